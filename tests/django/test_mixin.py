"""``AsyncPasswordMixin`` on a custom user model: non-blocking checks, upgrades saved, sets."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.hashers import check_password
from testproject.hashers import ITERATIONS, iterations_of, old_hash
from testproject.models import MixinUser

import loopsafe
from loopsafe.testing import assert_loop_responsive

pytestmark = pytest.mark.anyio


async def test_acheck_password_right_wrong_and_upgrade():
    """Right and wrong answers; a right password on an old hash upgrades and saves it."""
    user = await MixinUser.objects.acreate(username="m1", password=old_hash("pw"))
    assert await user.acheck_password("nope") is False
    assert iterations_of(user.password) != ITERATIONS
    assert await user.acheck_password("pw") is True
    saved = (await MixinUser.objects.aget(pk=user.pk)).password
    assert saved == user.password
    assert iterations_of(saved) == ITERATIONS
    assert check_password("pw", saved)


async def test_upgrade_is_not_a_password_change(monkeypatch):
    """An upgrade clears _password, so password_changed is not sent on the save."""
    changed = []
    monkeypatch.setattr(
        "django.contrib.auth.password_validation.password_changed",
        lambda *args, **kwargs: changed.append(args),
    )
    user = await MixinUser.objects.acreate(username="m2", password=old_hash("pw"))
    assert await user.acheck_password("pw") is True
    assert user._password is None
    assert changed == []


async def test_verify_and_rehash_are_one_pool_call():
    """The upgrade's new hash is made in the same pool call as the verification."""
    user = await MixinUser.objects.acreate(username="m3", password=old_hash("pw"))
    before = loopsafe.default_pool().statistics().admitted
    assert await user.acheck_password("pw") is True
    assert loopsafe.default_pool().statistics().admitted == before + 1


async def test_aset_password_then_asave():
    """aset_password sets a hash made on the pool; asave stores it."""
    user = MixinUser(username="m4")
    await user.aset_password("fresh-pw")
    assert user._password == "fresh-pw"
    await user.asave()
    assert await (await MixinUser.objects.aget(pk=user.pk)).acheck_password("fresh-pw")


async def test_concurrent_checks_keep_the_loop_responsive():
    """Ten concurrent checks (half upgrading) never stall the loop for one hash."""
    users = [
        await MixinUser.objects.acreate(username=f"c{i}", password=old_hash(f"pw{i}"))
        for i in range(10)
    ]
    async with assert_loop_responsive(max_lag=0.5):
        answers = await asyncio.gather(
            *(u.acheck_password(f"pw{i}" if i % 2 else "wrong") for i, u in enumerate(users))
        )
    assert answers == [bool(i % 2) for i in range(10)]
