"""The pytest plugin catches stock Django 5.2's acheck_password hashing on the loop.

Django 5.2's ``acheck_password`` is ``async def`` but runs the hasher inline,
on the event loop; loopsafe's runs the same configured hasher on its pool. The
hash is real PBKDF2-SHA256, at three times Django 5.2's default iterations.
"""

from __future__ import annotations

import django
import pytest
from django.contrib.auth import hashers as django_hashers

from loopsafe.django import acheck_password
from loopsafe.testing import LoopBlocked, assert_loop_responsive

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        django.VERSION[:2] != (5, 2), reason="stock Django 5.2 hashes inside acheck_password"
    ),
]

#: Three times Django 5.2's PBKDF2 default. At the default itself one hash takes
#: about 0.2 s on a fast core, no margin over BOUND: the detector then missed a
#: real block whenever the CPU ran fast. Three times keeps the block well over.
REAL_ITERATIONS = 3_000_000
#: Far above a healthy loop's lag, far below one real hash.
BOUND = 0.2


@pytest.fixture(scope="module")
def encoded():
    """A pbkdf2_sha256 hash at Django 5.2's default cost, made outside any loop."""
    hasher = django_hashers.PBKDF2PasswordHasher()
    return hasher.encode("correct horse", hasher.salt(), iterations=REAL_ITERATIONS)


async def test_stock_acheck_password_blocks_the_loop(encoded):
    """Django's acheck_password verifies on the event loop: the context manager fails."""
    with pytest.raises(LoopBlocked, match="the event loop was blocked for") as caught:
        async with assert_loop_responsive(BOUND):
            assert await django_hashers.acheck_password("correct horse", encoded)
    assert caught.value.max_lag > BOUND


async def test_loopsafe_acheck_password_keeps_the_loop_free(encoded):
    """loopsafe.django.acheck_password does the same verification off the loop: it passes."""
    async with assert_loop_responsive(BOUND):
        assert await acheck_password("correct horse", encoded)
        assert not await acheck_password("wrong", encoded)


@pytest.mark.xfail(raises=LoopBlocked, strict=True, reason="Django 5.2 hashes on the loop")
@pytest.mark.loop_responsive(max_lag=BOUND)
async def test_stock_acheck_password_under_the_marker(encoded):
    """The marker fails the same stock call (strict xfail: a Django that stops blocking shows)."""
    assert await django_hashers.acheck_password("correct horse", encoded)


@pytest.mark.loop_responsive(max_lag=BOUND)
async def test_loopsafe_acheck_password_under_the_marker(encoded):
    """The marker passes loopsafe's acheck_password, wrong password and unusable hash included."""
    assert await acheck_password("correct horse", encoded)
    assert not await acheck_password("wrong", encoded)
    assert not await acheck_password("correct horse", "!unusable")
