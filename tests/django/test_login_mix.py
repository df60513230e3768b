"""The proof: 20 concurrent logins of every kind, with the event loop measured all along.

Right, wrong and unknown users, and users whose stored hash has fewer PBKDF2
iterations than the configured hasher (so the login must upgrade and save
it), all at once through ``aauthenticate`` with loopsafe's backend. The
answers must be Django's, the upgraded hashes must be in the database, and
the loop lag must stay far below the time the hashing took.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from testproject.hashers import ITERATIONS, OLD_ITERATIONS, iterations_of, old_hash

import loopsafe
from loopsafe import LoopLagMonitor
from loopsafe.django import aauthenticate

pytestmark = pytest.mark.anyio

KINDS = ("right", "wrong", "unknown", "upgrade")


def make_mix(make_user):
    """Create 5 logins of each kind; return [(kind, username, password)] in a mixed order."""
    logins = []
    for i in range(5):
        make_user(f"right{i}", password=f"right-pw-{i}")
        logins.append(("right", f"right{i}", f"right-pw-{i}"))
        make_user(f"wrong{i}", password=f"wrong-pw-{i}")
        logins.append(("wrong", f"wrong{i}", "not-the-password"))
        logins.append(("unknown", f"nobody{i}", f"unknown-pw-{i}"))
        make_user(f"upgrade{i}", encoded=old_hash(f"upgrade-pw-{i}"))
        logins.append(("upgrade", f"upgrade{i}", f"upgrade-pw-{i}"))
    return logins


async def test_twenty_concurrent_logins_answer_right_and_keep_the_loop_free(make_user):
    """20 mixed aauthenticate calls: Django's answers, upgrades saved, lag far below hashing."""
    logins = await sync_to_async(make_mix)(make_user)
    before = loopsafe.default_pool().statistics()

    async with LoopLagMonitor(0.005) as lag:
        users = await asyncio.gather(
            *(aauthenticate(None, username=name, password=pw) for _, name, pw in logins)
        )

    after = loopsafe.default_pool().statistics()
    for (kind, name, _), user in zip(logins, users, strict=True):
        if kind in {"right", "upgrade"}:
            assert user is not None, name
            assert user.get_username() == name
        else:
            assert user is None, name

    # Upgraded hashes were saved: re-read them from the database.
    for i in range(5):
        stored = (await User.objects.aget(username=f"upgrade{i}")).password
        assert iterations_of(stored) == ITERATIONS
        assert check_password(f"upgrade-pw-{i}", stored)
        unchanged = (await User.objects.aget(username=f"right{i}")).password
        assert iterations_of(unchanged) == ITERATIONS

    # Every hash ran on the pool: 20 checks (one per login, unknown users included),
    # the 5 upgrades in the same calls.
    ran = after.completed - before.completed
    assert ran == 20
    assert after.failed == before.failed
    service_total = (after.mean_service_time or 0) * after.completed - (
        before.mean_service_time or 0
    ) * before.completed
    snapshot = lag.snapshot()
    # 25 hashes (5 upgrades hash twice) at 100k iterations: hundreds of ms in all.
    # On the loop, the worst stall would be at least one hash; here it stays a
    # small fraction of the total (generous: the machine is shared and noisy).
    assert snapshot.samples > 0
    assert snapshot.max < max(service_total / 4, 0.05), (snapshot, service_total)


async def test_upgrades_from_old_iterations_happen_once(make_user):
    """A second login with an upgraded hash verifies at the new cost and saves nothing."""
    await sync_to_async(make_user)("once", encoded=old_hash("pw-once"))
    first = await aauthenticate(None, username="once", password="pw-once")
    assert first is not None
    upgraded = (await User.objects.aget(username="once")).password
    assert iterations_of(upgraded) == ITERATIONS != OLD_ITERATIONS

    second = await aauthenticate(None, username="once", password="pw-once")
    assert second is not None
    assert (await User.objects.aget(username="once")).password == upgraded


async def test_wrong_password_on_an_old_hash_is_not_upgraded(make_user):
    """A wrong password never rewrites the stored hash, however old."""
    stored = old_hash("the-real-one")
    await sync_to_async(make_user)("keep", encoded=stored)
    assert await aauthenticate(None, username="keep", password="a-guess") is None
    assert (await User.objects.aget(username="keep")).password == stored


async def test_md5_hash_is_upgraded_to_the_preferred_hasher(make_user):
    """A hash made by another configured hasher (MD5) is replaced by the preferred one."""
    from django.contrib.auth.hashers import MD5PasswordHasher

    md5 = MD5PasswordHasher()
    await sync_to_async(make_user)("legacy", encoded=md5.encode("legacy-pw", md5.salt()))
    assert await aauthenticate(None, username="legacy", password="legacy-pw") is not None
    stored = (await User.objects.aget(username="legacy")).password
    assert stored.startswith("pbkdf2_sha256$")
    assert iterations_of(stored) == ITERATIONS
