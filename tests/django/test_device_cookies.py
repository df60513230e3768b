"""Device cookies in Django: a returning browser's login is hashed at a higher priority."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient, override_settings

from loopsafe.devices import TRUSTED_PRIORITY
from loopsafe.django import device_cookies

pytestmark = pytest.mark.anyio

RECORDING = "testproject.hashers.PriorityRecordingPBKDF2PasswordHasher"


async def test_returning_browser_is_hashed_first_and_cookie_bound_to_username(make_user):
    """After a login sets the cookie, the next login runs at TRUSTED_PRIORITY; others at 0."""
    from testproject.hashers import PriorityRecordingPBKDF2PasswordHasher as Recording

    with override_settings(PASSWORD_HASHERS=[RECORDING, *settings.PASSWORD_HASHERS]):
        await sync_to_async(make_user)("ivy", password="ivy-pw")
        await sync_to_async(make_user)("jon", password="jon-pw")
        client = AsyncClient(REMOTE_ADDR="198.51.100.20")
        Recording.seen.clear()
        first = await client.post("/login-device/", {"username": "ivy", "password": "ivy-pw"})
        assert first.status_code == 200
        cookie = first.cookies[device_cookies().cookie_name]
        assert cookie["httponly"]
        assert device_cookies().verify(cookie.value, "ivy")
        second = await client.post("/login-device/", {"username": "ivy", "password": "ivy-pw"})
        assert second.status_code == 200
        other = await client.post("/login-device/", {"username": "jon", "password": "wrong"})
        assert other.status_code == 401
        assert Recording.seen == [0, TRUSTED_PRIORITY, 0]


def test_rotating_secret_key_keeps_old_cookies_valid():
    """SECRET_KEY_FALLBACKS verify device cookies issued under the old SECRET_KEY."""
    token = device_cookies().issue("kim")
    with override_settings(SECRET_KEY="r" * 50, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        assert device_cookies().verify(token, "kim")
    with override_settings(SECRET_KEY="r" * 50, SECRET_KEY_FALLBACKS=[]):
        assert not device_cookies().verify(token, "kim")


async def test_short_secret_key_never_breaks_a_login(make_user):
    """With a SECRET_KEY too short to sign with, logins work and a presented cookie is ignored."""
    await sync_to_async(make_user)("lee", password="lee-pw")
    with override_settings(SECRET_KEY="short-dev-key"):
        client = AsyncClient(REMOTE_ADDR="198.51.100.21")
        client.cookies["loopsafe_device"] = "v1.0.x.y"
        response = await client.post("/login/", {"username": "lee", "password": "lee-pw"})
    assert response.status_code == 200


def test_a_password_calls_route_carries_the_logins_priority():
    """route(None) passes the login's key and priority to the pool; a given key runs at 0."""
    from loopsafe.django._client import using_key
    from loopsafe.django._route import route

    with using_key("device-key", TRUSTED_PRIORITY):
        current = route(None)
        given = route("other-key")
    assert (current.key, current.priority) == ("device-key", TRUSTED_PRIORITY)
    assert (given.key, given.priority) == ("other-key", 0)
    assert route(None).priority == 0
