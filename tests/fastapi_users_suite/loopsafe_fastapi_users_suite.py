"""A pytest plugin that runs fastapi-users' own test suite with loopsafe's manager mixin.

Loaded with ``-p loopsafe_fastapi_users_suite`` by ``.ci/fastapi-users-suite``,
before fastapi-users' ``tests/conftest.py`` is imported: it makes
``fastapi_users.manager.BaseUserManager`` loopsafe's `PoolPasswordManagerMixin`,
so every ``UserManager`` the suite defines hashes and verifies on the pool. At
the end of the session it fails the run if the pool served no call (the swap
did not take).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import fastapi_users.manager

import loopsafe
from loopsafe.fastapi_users import PoolPasswordManagerMixin

if TYPE_CHECKING:
    import pytest

fastapi_users.manager.BaseUserManager = PoolPasswordManagerMixin  # type: ignore[misc] # the swap is the point


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when loopsafe's pool served no call: the suite would prove nothing."""
    completed = loopsafe.default_pool().statistics().completed
    print(f"\nloopsafe: the pool served {completed} calls during fastapi-users' suite")  # noqa: T201 - the CI log's evidence
    if completed == 0 and exitstatus == 0:
        session.exitstatus = 1
