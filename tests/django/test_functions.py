"""The async twins of Django's password functions: Django's answers, computed on the pool."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth import hashers
from django.contrib.auth.hashers import check_password, make_password
from testproject.hashers import ITERATIONS, iterations_of, old_hash

import loopsafe
from loopsafe.django import acheck_password, amake_password, aset_password, averify_password
from loopsafe.testing import assert_loop_responsive

pytestmark = pytest.mark.anyio


def _verify(password, encoded):
    """Django's verify_password, or its 4.2 equivalent through check_password."""
    verify = getattr(hashers, "verify_password", None)
    if verify is not None:
        return verify(password, encoded)
    return check_password(password, encoded), None


CASES = [
    pytest.param("pw", lambda: make_password("pw"), id="right"),
    pytest.param("nope", lambda: make_password("pw"), id="wrong"),
    pytest.param("pw", lambda: old_hash("pw"), id="right-outdated"),
    pytest.param("nope", lambda: old_hash("pw"), id="wrong-outdated"),
    pytest.param("pw", lambda: make_password(None), id="unusable-hash"),
    pytest.param("pw", lambda: "gibberish", id="gibberish-hash"),
    pytest.param("pw", lambda: "md5$$garbage", id="md5-without-salt"),
    pytest.param("pw", lambda: "pbkdf2_sha256$x$y$z", id="malformed-pbkdf2"),
    pytest.param("pw", lambda: "nosuchalgo$1$x$y", id="unknown-algorithm"),
    pytest.param(None, lambda: make_password("pw"), id="none-password"),
    pytest.param("", lambda: make_password(""), id="empty-password"),
    pytest.param("lètmein", lambda: make_password("lètmein"), id="non-ascii"),
]


def outcome(fn, *args):
    """Return ("value", result) or ("raises", exception type) of a sync call."""
    try:
        return "value", fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type is the answer
        return "raises", type(exc)


async def aoutcome(coro):
    """Return ("value", result) or ("raises", exception type) of an awaited call."""
    try:
        return "value", await coro
    except Exception as exc:  # noqa: BLE001
        return "raises", type(exc)


@pytest.mark.parametrize(("password", "encoded"), CASES)
async def test_averify_password_matches_django(password, encoded):
    """averify_password gives Django's (is_correct, must_update), or raises what Django raises."""
    stored = encoded()
    ours = await aoutcome(averify_password(password, stored))
    kind, expected = outcome(_verify, password, stored)
    if kind == "raises" or expected[1] is not None:
        assert ours == (kind, expected)
    else:  # Django 4.2: only is_correct to compare
        assert ours[0] == "value"
        assert ours[1][0] is expected[0]


@pytest.mark.parametrize(("password", "encoded"), CASES)
async def test_acheck_password_matches_django(password, encoded):
    """acheck_password answers as Django's check_password, or raises what it raises."""
    stored = encoded()
    ours = await aoutcome(acheck_password(password, stored))
    assert ours == outcome(check_password, password, stored)


async def test_acheck_password_awaits_the_setter_only_for_a_right_outdated_password():
    """The setter runs with the raw password exactly when Django's would."""
    calls = []

    async def setter(raw):
        calls.append(raw)

    assert await acheck_password("pw", make_password("pw"), setter) is True
    assert await acheck_password("bad", old_hash("pw"), setter) is False
    assert calls == []
    assert await acheck_password("pw", old_hash("pw"), setter) is True
    assert calls == ["pw"]


async def test_acheck_password_with_preferred_hasher():
    """A hash by a non-preferred algorithm must be updated, as with Django's preferred=."""
    stored = make_password("pw")
    ok, must_update = await averify_password("pw", stored, "md5")
    assert (ok, must_update) == (True, True)
    assert await acheck_password("pw", stored, preferred="md5") is True


async def test_amake_password_makes_a_django_hash_on_the_pool():
    """amake_password uses the configured hasher, off the loop, and Django verifies it."""
    before = loopsafe.default_pool().statistics().completed
    encoded = await amake_password("s3cret")
    assert loopsafe.default_pool().statistics().completed == before + 1
    assert iterations_of(encoded) == ITERATIONS
    assert check_password("s3cret", encoded)


async def test_amake_password_salt_hasher_and_bytes():
    """salt and hasher are passed through; bytes passwords work as in Django."""
    assert await amake_password("pw", "fixedsalt123", "md5") == make_password(
        "pw", "fixedsalt123", "md5"
    )
    encoded = await amake_password(b"bytes-pw", "fixedsalt123")
    assert encoded == make_password(b"bytes-pw", "fixedsalt123")


async def test_amake_password_none_is_unusable_without_the_pool():
    """None makes an unusable password at once: nothing is queued."""
    before = loopsafe.default_pool().statistics().admitted
    encoded = await amake_password(None)
    assert not hashers.is_password_usable(encoded)
    assert loopsafe.default_pool().statistics().admitted == before


@pytest.mark.parametrize("bad", [pytest.param(1, id="int"), pytest.param(object(), id="object")])
async def test_amake_password_rejects_other_types_like_django(bad):
    """A password that is not str, bytes or None raises Django's TypeError before queueing."""
    with pytest.raises(TypeError) as django_error:
        make_password(bad)
    with pytest.raises(TypeError) as ours:
        await amake_password(bad)
    assert str(ours.value) == str(django_error.value)


async def test_aset_password_sets_but_does_not_save(make_user):
    """aset_password sets password and _password, like set_password, and saves nothing."""
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    user = await sync_to_async(make_user)("setme", password="old")
    stored = user.password
    await aset_password(user, "new-pw")
    assert check_password("new-pw", user.password)
    assert user._password == "new-pw"
    assert (await User.objects.aget(pk=user.pk)).password == stored


async def test_aset_password_none_makes_it_unusable():
    """aset_password(user, None) is set_unusable_password's twin."""
    from django.contrib.auth.models import User

    user = User(username="x")
    await aset_password(user, None)
    assert not user.has_usable_password()


async def test_hashing_keeps_the_loop_responsive():
    """Ten concurrent checks and hashes at test cost never stall the loop for one hash."""
    stored = make_password("pw")
    async with assert_loop_responsive(max_lag=0.5):
        results = await asyncio.gather(
            *(acheck_password("pw", stored) for _ in range(5)),
            *(amake_password("pw") for _ in range(5)),
        )
    assert results[:5] == [True] * 5


async def test_overloaded_propagates_and_nothing_runs(saturate):
    """When admission refuses, the functions raise Overloaded and no hash is made."""
    pool = loopsafe.configure(1, max_queue_wait=None, max_pending=1)
    async with saturate(pool):
        for call in (
            averify_password("pw", "md5$$x"),
            acheck_password("pw", "md5$$x"),
            amake_password("pw"),
        ):
            with pytest.raises(loopsafe.Overloaded):
                await call
        assert pool.statistics().rejected == 3
