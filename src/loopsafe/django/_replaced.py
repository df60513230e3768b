"""The record of what ``PATCH_AUTH`` replaced, and the user method it puts in place.

Below `loopsafe.django._patch` (which does the replacing) and
`loopsafe.django._authenticate` (which must tell Django's own
``acheck_password`` from loopsafe's), so neither imports the other.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from loopsafe.django._passwords import acheck_user_password, hide_passwords

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = [
    "ABSENT",
    "lock",
    "original",
    "originals",
    "own_attribute",
    "patched_user_acheck_password",
    "replacements",
]

lock = threading.Lock()
#: (owner, attribute) -> what was there before `patch`; empty when unpatched.
originals: dict[tuple[object, str], Any] = {}
#: Marks an attribute that ``owner`` did not define itself (restored by deleting it).
ABSENT: Any = object()
#: (owner, attribute) -> what `patch` put there.
replacements: dict[tuple[object, str], Any] = {}


@hide_passwords
async def patched_user_acheck_password(self: AbstractBaseUser, raw_password: str | None) -> bool:
    """``AbstractBaseUser.acheck_password`` with verification and rehash on the loopsafe pool."""
    return await acheck_user_password(self, raw_password)  # type: ignore[arg-type] # django-stubs types `password` as a field


patched_user_acheck_password.__qualname__ = "AbstractBaseUser.acheck_password"


def original(owner: object, attr: str) -> Any:
    """Return Django's own ``owner.attr``: the saved one while patched, else the current one."""
    with lock:
        saved = originals.get((owner, attr), ABSENT)
    if saved is ABSENT:
        saved = own_attribute(owner, attr)
    return None if saved is ABSENT else saved


def own_attribute(owner: object, attr: str) -> Any:
    """The attribute as stored on ``owner`` itself (a function, not a bound method), or ABSENT."""
    return vars(owner).get(attr, ABSENT)
