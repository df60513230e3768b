"""Client keys in loopsafe.litestar: LoopsafePlugin(client_key=...) and the bound dependency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, Request, Response, WebSocket, get, websocket
from litestar.connection import ASGIConnection  # noqa: TC002 - Litestar reads annotations
from litestar.di import NamedDependency  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.testing import AsyncTestClient, TestClient

from _keys import FLOOD_POOL, against_a_flood, shed_for_fair_share
from loopsafe import HashPool, PasswordHash, profiles
from loopsafe.litestar import LoopsafePlugin, client_host

pytestmark = pytest.mark.anyio

CLIENT = ("203.0.113.5", 4000)


@pytest.fixture
def anyio_backend():
    """Litestar's test client runs on asyncio."""
    return "asyncio"


@get("/key")
async def key_route(password_hash: NamedDependency[PasswordHash]) -> dict[str, Any]:
    """Answer the key the handler's PasswordHash is bound to."""
    return {"key": password_hash._key}


@get("/hash", media_type=MediaType.TEXT)
async def hash_route(password_hash: NamedDependency[PasswordHash]) -> str:
    """Hash on the pool with the dependency's key."""
    return await password_hash.ahash("pw")


def app_with(**settings: Any) -> Litestar:
    """An app with both routes and a cheap plugin; a TypeError is answered 500 with its text."""

    def type_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
        return Response(f"{type(exc).__name__}: {exc}", status_code=500)

    plugin = LoopsafePlugin(
        password_hash=PasswordHash.recommended(profile=profiles.CHEAP), **settings
    )
    return Litestar(
        [key_route, hash_route], plugins=[plugin], exception_handlers={TypeError: type_error}
    )


async def call(app: Litestar, path: str, client: tuple[str, int] = CLIENT) -> httpx.Response:
    """GET ``path`` from the address ``client`` (the app's lifespan must be running)."""
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path)


async def key_seen(app: Litestar, client: tuple[str, int] = CLIENT) -> object:
    """The key the dependency bound for a request from ``client``."""
    async with AsyncTestClient(app):
        return (await call(app, "/key", client)).json()["key"]


async def test_the_dependency_binds_the_peer_address():
    """By default the password_hash dependency is bound to request.client.host."""
    assert await key_seen(app_with()) == "203.0.113.5"


def test_a_websocket_handler_gets_a_bound_password_hash_too():
    """In a websocket handler the dependency is bound to the socket's peer address."""

    @websocket("/ws")
    async def ws(socket: WebSocket, password_hash: NamedDependency[PasswordHash]) -> None:
        await socket.accept()
        await socket.send_json({"key": password_hash._key})
        await socket.close()

    plugin = LoopsafePlugin(password_hash=PasswordHash.recommended(profile=profiles.CHEAP))
    with (
        TestClient(Litestar([ws], plugins=[plugin])) as client,
        client.websocket_connect("/ws") as s,
    ):
        assert s.receive_json() == {"key": "testclient"}  # Litestar's test client's address


async def test_custom_client_key():
    """client_key picks the key from the connection (here: the /24 network as a string)."""

    def subnet(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        return (client_host(connection) or "").rsplit(".", 1)[0] + ".0/24"

    assert await key_seen(app_with(client_key=subnet)) == "203.0.113.0/24"


async def test_client_key_none_hands_out_the_apps_password_hash():
    """client_key=None: the dependency is the app's PasswordHash itself, unbound."""
    assert await key_seen(app_with(client_key=None)) is None


async def test_a_bad_key_from_client_key_is_a_type_error_naming_the_type():
    """client_key returning a list raises TypeError at the call, naming list, not the value."""
    app = app_with(client_key=lambda connection: [client_host(connection)])
    async with AsyncTestClient(app):
        answer = await call(app, "/key")
    assert answer.status_code == 500
    assert answer.text.startswith("TypeError: LoopsafePlugin(client_key=...) returned a bad key")
    assert "list" in answer.text
    assert "203.0.113.5" not in answer.text


@pytest.mark.parametrize("option", ["203.0.113.5", 42], ids=["str", "int"])
def test_a_client_key_that_is_not_callable_fails_at_construction(option):
    """LoopsafePlugin(client_key=<not callable>) raises TypeError naming the type only."""
    with pytest.raises(TypeError, match="client_key") as caught:
        LoopsafePlugin(client_key=option)
    assert type(option).__name__ in str(caught.value)
    assert str(option) not in str(caught.value)


async def test_a_flood_from_another_address_is_shed_for_the_client():
    """The request's key reaches the pool: a flood from another key gives way to it."""
    app = app_with(**FLOOD_POOL)
    async with AsyncTestClient(app):
        pool: HashPool = app.state["loopsafe_pool"]
        answer, flood = await against_a_flood(
            pool, lambda: call(app, "/hash"), flood_key="10.66.0.1"
        )
    assert answer.status_code == 200
    assert answer.text.startswith("argon2$")
    assert shed_for_fair_share(flood)


async def test_a_flood_from_the_same_address_refuses_it():
    """The request's key is its address: a flood from that address is not pushed out for it."""
    app = app_with(**FLOOD_POOL)
    async with AsyncTestClient(app):
        pool: HashPool = app.state["loopsafe_pool"]
        answer, flood = await against_a_flood(
            pool, lambda: call(app, "/hash"), flood_key="203.0.113.5"
        )
    assert answer.status_code == 503
    assert flood == [None, None, None]


async def test_client_key_none_is_first_come_first_served():
    """client_key=None: the request joins the unkeyed flood's queue and is refused (503)."""
    app = app_with(client_key=None, **FLOOD_POOL)
    async with AsyncTestClient(app):
        pool: HashPool = app.state["loopsafe_pool"]
        answer, flood = await against_a_flood(pool, lambda: call(app, "/hash"), flood_key=None)
    assert answer.status_code == 503
    assert flood == [None, None, None]
