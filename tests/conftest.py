"""Shared fixtures: every async test runs on asyncio, uvloop and trio; a private pool."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from loopsafe import HashPool

if TYPE_CHECKING:
    from collections.abc import Iterator

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(
        ("asyncio", {"use_uvloop": True}),
        id="uvloop",
        marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build"),
    ),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    """Run each ``@pytest.mark.anyio`` test once per event loop implementation."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def pool() -> Iterator[HashPool]:
    """A private two-worker pool per test, closed afterwards."""
    private = HashPool(2, name="test")
    yield private
    private.close()
