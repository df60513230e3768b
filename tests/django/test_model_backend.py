"""loopsafe's ``ModelBackend`` and ``aauthenticate``: Django's answers, every hash on the pool."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.test import override_settings

import loopsafe
from loopsafe.django import aauthenticate
from loopsafe.django.backends import AllowAllUsersModelBackend, ModelBackend

pytestmark = pytest.mark.anyio


@pytest.fixture
def failed_logins():
    """Collect the user_login_failed signals sent during the test."""
    seen = []

    def receiver(sender, credentials, **kwargs):
        seen.append(credentials)

    user_login_failed.connect(receiver)
    yield seen
    user_login_failed.disconnect(receiver)


def admitted():
    """Calls the default pool has admitted so far."""
    return loopsafe.default_pool().statistics().admitted


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        pytest.param("alice", "alice-pw", "alice", id="right"),
        pytest.param("alice", "wrong", None, id="wrong"),
        pytest.param("nobody", "whatever", None, id="unknown-user"),
        pytest.param("inactive", "inactive-pw", None, id="inactive-user"),
    ],
)
async def test_answers_and_one_pool_call_each(
    make_user, failed_logins, username, password, expected
):
    """Each login is one pool call; failures send user_login_failed once, as in Django."""
    await sync_to_async(make_user)("alice", password="alice-pw")
    await sync_to_async(make_user)("inactive", password="inactive-pw", is_active=False)
    before = admitted()
    user = await aauthenticate(None, username=username, password=password)
    assert (user.get_username() if user else None) == expected
    assert admitted() == before + 1
    if expected is None:
        assert len(failed_logins) == 1
        assert failed_logins[0]["password"] != password
    else:
        assert user.backend == "loopsafe.django.backends.ModelBackend"
        assert failed_logins == []


async def test_username_field_keyword_and_missing_credentials(make_user):
    """USERNAME_FIELD may be passed by name; no username or no password hashes nothing."""
    await sync_to_async(make_user)("bob", password="bob-pw")
    backend = ModelBackend()
    assert await backend.aauthenticate(None, username="bob", password="bob-pw") is not None
    assert await backend.aauthenticate(None, username="bob", password="bob-pw")
    before = admitted()
    assert await backend.aauthenticate(None, username="bob") is None
    assert await backend.aauthenticate(None, password="bob-pw") is None
    assert admitted() == before


async def test_allow_all_users_backend_lets_inactive_users_in(make_user):
    """AllowAllUsersModelBackend accepts an inactive user with the right password."""
    await sync_to_async(make_user)("sleepy", password="pw", is_active=False)
    user = await AllowAllUsersModelBackend().aauthenticate(None, username="sleepy", password="pw")
    assert user is not None


async def test_unknown_user_hashes_once_on_the_pool_with_the_model_method(make_user):
    """An unknown user costs one hash (Django #20760), run through set_password on the pool."""
    calls = []
    original = User.set_password

    def spy(self, raw_password):
        calls.append(threading.current_thread().name)
        original(self, raw_password)

    User.set_password = spy
    try:
        assert await ModelBackend().aauthenticate(None, username="ghost", password="x") is None
    finally:
        User.set_password = original
    assert len(calls) == 1
    assert calls[0].startswith("loopsafe-default-worker")


async def test_custom_acheck_password_is_respected(make_user, monkeypatch):
    """A user model's own acheck_password is awaited, as Django's backend does."""
    await sync_to_async(make_user)("carol", password="carol-pw")
    seen = []

    async def custom(self, raw_password):
        seen.append(self.username)
        return True

    monkeypatch.setattr(User, "acheck_password", custom, raising=False)
    user = await ModelBackend().aauthenticate(None, username="carol", password="anything")
    assert user is not None
    assert seen == ["carol"]


async def test_overloaded_login_propagates_without_user_login_failed(
    make_user, failed_logins, saturate
):
    """A refused login raises Overloaded through aauthenticate and is not a failed login."""
    await sync_to_async(make_user)("dave", password="dave-pw")
    with override_settings(LOOPSAFE={"MAX_WORKERS": 1, "MAX_QUEUE_WAIT": None, "MAX_PENDING": 1}):
        async with saturate(loopsafe.default_pool()):
            for username in ("dave", "nobody"):
                with pytest.raises(loopsafe.Overloaded):
                    await aauthenticate(None, username=username, password="dave-pw")
    assert failed_logins == []


async def test_cancelled_login_saves_no_upgrade(make_user):
    """A login cancelled while its hash runs leaves the stored (old) hash untouched."""
    from testproject.hashers import old_hash

    stored = old_hash("erin-pw")
    await sync_to_async(make_user)("erin", encoded=stored)
    task = asyncio.ensure_future(aauthenticate(None, username="erin", password="erin-pw"))
    pool = loopsafe.default_pool()
    while pool.statistics().running < 1 and not task.done():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    while pool.statistics().running:
        await asyncio.sleep(0.005)
    assert (await User.objects.aget(username="erin")).password == stored


def test_sync_authenticate_is_djangos(make_user):
    """The synchronous path is Django's own, untouched."""
    from django.contrib.auth import authenticate

    make_user("frank", password="frank-pw")
    assert authenticate(username="frank", password="frank-pw") is not None
    assert authenticate(username="frank", password="nope") is None
