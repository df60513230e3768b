"""Client keys in loopsafe.aiohttp: setup(client_key=...) and get_password_hash(request)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from _keys import FLOOD_POOL, against_a_flood, shed_for_fair_share
from loopsafe import HashPool, PasswordHash, profiles
from loopsafe.aiohttp import PASSWORD_HASH_KEY, POOL_KEY, client_remote, get_password_hash, setup

pytestmark = pytest.mark.anyio

#: The client connects from this loopback address (a real source address).
CLIENT = "127.0.0.7"


@pytest.fixture
def anyio_backend():
    """aiohttp runs on asyncio."""
    return "asyncio"


async def key_route(request: web.Request) -> web.Response:
    """Answer the key the request's PasswordHash is bound to."""
    try:
        key = get_password_hash(request)._key
    except TypeError as exc:
        return web.Response(status=500, text=f"TypeError: {exc}")
    return web.json_response({"key": key})


async def hash_route(request: web.Request) -> web.Response:
    """Hash on the pool with the request's key."""
    return web.Response(text=await get_password_hash(request).ahash("pw"))


def app_with(**settings: Any) -> web.Application:
    """An app with both routes, set up with cheap parameters."""
    app = web.Application()
    setup(app, password_hash=PasswordHash.recommended(profile=profiles.CHEAP), **settings)
    app.router.add_get("/key", key_route)
    app.router.add_get("/hash", hash_route)
    return app


def client_for(app: web.Application, source: str = CLIENT) -> TestClient:
    """aiohttp's test client on a real server, connecting from the address ``source``."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    return TestClient(TestServer(app, host="127.0.0.1"), connector=connector)


async def key_seen(app: web.Application) -> object:
    """The key get_password_hash bound for a request from `CLIENT`."""
    async with client_for(app) as client:
        return (await (await client.get("/key")).json())["key"]


async def test_the_request_is_bound_to_the_peer_address():
    """By default get_password_hash(request) is bound to request.remote."""
    assert await key_seen(app_with()) == CLIENT


async def test_custom_client_key_and_sub_apps():
    """setup's client_key picks the key; a sub-app's request uses its parent's."""

    def subnet(request: web.Request) -> str:
        return (client_remote(request) or "").rsplit(".", 1)[0] + ".0/24"

    app, sub = app_with(client_key=subnet), web.Application()
    sub.router.add_get("/key", key_route)
    app.add_subapp("/sub", sub)
    async with client_for(app) as client:
        assert (await (await client.get("/sub/key")).json())["key"] == "127.0.0.0/24"


async def test_client_key_none_and_an_application_stay_unbound():
    """client_key=None hands out the app's PasswordHash; so does an Application argument."""
    assert await key_seen(app_with(client_key=None)) is None
    app = app_with()
    assert get_password_hash(app) is app[PASSWORD_HASH_KEY]


async def test_a_bad_key_from_client_key_is_a_type_error_naming_the_type():
    """client_key returning a list raises TypeError at the call, naming list, not the value."""
    async with client_for(app_with(client_key=lambda request: [request.remote])) as client:
        answer = await client.get("/key")
        text = await answer.text()
    assert answer.status == 500
    assert text.startswith("TypeError: setup(client_key=...) returned a bad key")
    assert "list" in text
    assert CLIENT not in text


@pytest.mark.parametrize("option", ["127.0.0.7", 42], ids=["str", "int"])
def test_a_client_key_that_is_not_callable_fails_at_setup(option):
    """setup(app, client_key=<not callable>) raises TypeError naming the type only."""
    app = web.Application()
    with pytest.raises(TypeError, match="client_key") as caught:
        setup(app, client_key=option)
    assert type(option).__name__ in str(caught.value)
    assert str(option) not in str(caught.value)
    assert not app.middlewares  # nothing was added


async def test_a_flood_from_another_address_is_shed_for_the_client():
    """The request's key reaches the pool: a flood from another key gives way to it."""
    app = app_with(**FLOOD_POOL)
    async with client_for(app) as client:
        pool: HashPool = app[POOL_KEY]

        async def request() -> tuple[int, str]:
            answer = await client.get("/hash")
            return answer.status, await answer.text()

        (status, text), flood = await against_a_flood(pool, request, flood_key="10.66.0.1")
    assert status == 200
    assert text.startswith("argon2$")
    assert shed_for_fair_share(flood)


async def test_a_flood_from_the_same_address_refuses_it():
    """The request's key is its address: a flood from that address is not pushed out for it."""
    app = app_with(**FLOOD_POOL)
    async with client_for(app) as client:
        pool: HashPool = app[POOL_KEY]

        async def request() -> int:
            return (await client.get("/hash")).status

        status, flood = await against_a_flood(pool, request, flood_key=CLIENT)
    assert status == 503
    assert flood == [None, None, None]


async def test_client_key_none_is_first_come_first_served():
    """client_key=None: the request joins the unkeyed flood's queue and is refused (503)."""
    app = app_with(client_key=None, **FLOOD_POOL)
    async with client_for(app) as client:
        pool: HashPool = app[POOL_KEY]

        async def request() -> int:
            return (await client.get("/hash")).status

        status, flood = await against_a_flood(pool, request, flood_key=None)
    assert status == 503
    assert flood == [None, None, None]
