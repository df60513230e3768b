"""LOOPSAFE["CLIENT_KEY"]: each request hashes under its client's key; a flood gives way first."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, RequestFactory, override_settings

import loopsafe
from loopsafe import Overloaded
from loopsafe.django import client_address
from loopsafe.django._client import client_key, current_key

pytestmark = pytest.mark.anyio

#: One worker, a queue of two, no wait-based limit: admission is counts only.
TINY_POOL = {"MAX_WORKERS": 1, "MAX_QUEUE_WAIT": None, "MAX_PENDING": 2}
FLOOD = "10.66.0.1"


def bare_address(request):
    """A CLIENT_KEY callable for the tests: the address, as the default does."""
    return request.META.get("REMOTE_ADDR")


def bad_key(request):
    """A CLIENT_KEY callable returning something that cannot be a key."""
    return ["10.0.0.1"]


@contextlib.asynccontextmanager
async def flooded(pool, key=FLOOD):
    """Fill the pool (one running, two queued) with calls of ``key`` that wait."""
    gate = threading.Event()
    calls = []
    try:
        for expected in (1, 2, 3):
            calls.append(asyncio.ensure_future(pool.run(gate.wait, 30, key=key)))
            for _ in range(2000):
                stats = pool.statistics()
                if stats.running + stats.queued == expected:
                    break
                await asyncio.sleep(0.005)
        yield calls, gate
    finally:
        gate.set()
        await asyncio.gather(*calls, return_exceptions=True)


def test_default_key_is_remote_addr():
    """By default the key is REMOTE_ADDR; X-Forwarded-For is not trusted."""
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_address(request) == "203.0.113.9"
    assert client_key(request) == "203.0.113.9"


def test_missing_remote_addr_is_the_shared_key():
    """A request without an address hashes under the shared key (None)."""
    request = RequestFactory().get("/")
    del request.META["REMOTE_ADDR"]
    assert client_address(request) is None


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param("test_client_key.bare_address", id="dotted-path"),
        pytest.param(bare_address, id="callable"),
    ],
)
def test_client_key_setting(setting):
    """CLIENT_KEY takes a callable or its dotted path."""
    with override_settings(LOOPSAFE={"CLIENT_KEY": setting}):
        request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.4")
        assert client_key(request) == "198.51.100.4"


def test_client_key_none_disables_keys():
    """CLIENT_KEY None: every request shares one key (first come, first served)."""
    with override_settings(LOOPSAFE={"CLIENT_KEY": None}):
        assert client_key(RequestFactory().get("/", REMOTE_ADDR="198.51.100.4")) is None


def test_client_key_of_a_wrong_type_is_improperly_configured():
    """A CLIENT_KEY that is neither callable, dotted path nor None is refused, naming the key."""
    with pytest.raises(ImproperlyConfigured, match="CLIENT_KEY"):  # noqa: SIM117 - one setting
        with override_settings(LOOPSAFE={"CLIENT_KEY": 42}):
            pass


def test_client_key_returning_a_bad_key_names_the_type_only():
    """A callable returning a list raises ImproperlyConfigured naming the type, not the value."""
    with (
        override_settings(LOOPSAFE={"CLIENT_KEY": bad_key}),
        pytest.raises(ImproperlyConfigured, match="list") as caught,
    ):
        client_key(RequestFactory().get("/"))
    assert "10.0.0.1" not in str(caught.value)


async def test_login_from_another_client_gets_in_while_a_flood_fills_the_pool(make_user):
    """With a flood filling the pool, a login from another address is admitted and answered."""
    await sync_to_async(make_user)("ines", password="ines-pw")
    with override_settings(LOOPSAFE=TINY_POOL):
        pool = loopsafe.default_pool()
        async with flooded(pool) as (calls, gate):
            login = asyncio.ensure_future(
                AsyncClient().post("/login/", {"username": "ines", "password": "ines-pw"})
            )
            for _ in range(2000):
                if pool.statistics().shed == 1:
                    break
                await asyncio.sleep(0.005)
            assert pool.statistics().active_keys == 2
            with pytest.raises(Overloaded) as refused:
                await pool.run(abs, 1, key=FLOOD)
            assert refused.value.reason == "fair-share"
            gate.set()
            response = await login
        assert response.status_code == 200
        shed = [call.exception() for call in calls if call.done() and call.exception()]
        assert len(shed) == 1
        assert isinstance(shed[0], Overloaded)
        assert shed[0].reason == "fair-share"


async def test_without_keys_the_same_login_is_refused(make_user):
    """CLIENT_KEY None and a flood without keys: a full FIFO queue, the login is answered 503."""
    await sync_to_async(make_user)("jon", password="jon-pw")
    with override_settings(LOOPSAFE={**TINY_POOL, "CLIENT_KEY": None}):
        pool = loopsafe.default_pool()
        async with flooded(pool, key=None):
            response = await AsyncClient().post(
                "/login/", {"username": "jon", "password": "jon-pw"}
            )
        assert response.status_code == 503
        assert pool.statistics().refusals["pending"] == 1


async def test_functions_take_the_current_key_and_an_explicit_one():
    """The a-functions run under the request's key from the context, or under key= given."""
    from loopsafe.django._client import using_key

    with using_key("192.0.2.8"):
        assert current_key() == "192.0.2.8"
        ok, _ = await loopsafe.django.averify_password("x", "pbkdf2_sha256$1$s$bad")
        assert ok is False
    ok, _ = await loopsafe.django.averify_password("x", "pbkdf2_sha256$1$s$bad", key="192.0.2.9")
    assert ok is False
    with pytest.raises(TypeError, match="key must be"):
        await loopsafe.django.averify_password("x", "", key=["192.0.2.9"])  # type: ignore[arg-type]
    assert current_key() is None
    assert loopsafe.default_pool().statistics().active_keys == 0
