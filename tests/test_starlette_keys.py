"""Client keys in the facade and Starlette: for_client, get_password_hash, lifespan(client_key=)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from loopsafe import HashPool, Overloaded, PasswordHash, profiles
from loopsafe.starlette import EXCEPTION_HANDLERS, client_host, get_password_hash, lifespan

if TYPE_CHECKING:
    from starlette.requests import Request

pytestmark = pytest.mark.anyio

FLOOD = "10.66.0.1"


def cheap(pool: HashPool | None = None) -> PasswordHash:
    """The cheap profile, PBKDF2 preferred."""
    return PasswordHash(profiles.CHEAP.hashers(), pool=pool)


def app_with(**options: object) -> Starlette:
    """An app whose /key route answers the key its PasswordHash is bound to."""

    async def key(request: Request) -> JSONResponse:
        ph = await get_password_hash(request)
        return JSONResponse({"key": ph._key})

    return Starlette(
        routes=[Route("/key", key)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan(password_hash=cheap(), **options),  # type: ignore[arg-type]
    )


async def _key_seen(app: Starlette, client: tuple[str, int]) -> object:
    transport = httpx.ASGITransport(app=app, client=client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        return (await http.get("/key")).json()["key"]


async def test_dependency_binds_the_peer_address():
    """get_password_hash hands each request a PasswordHash keyed by request.client.host."""
    assert await _key_seen(app_with(), ("203.0.113.5", 4000)) == "203.0.113.5"


async def test_custom_client_key():
    """The lifespan's client_key picks the key (here: the /24 network as a string)."""

    def subnet(request: Request) -> str:
        host = client_host(request) or ""
        return host.rsplit(".", 1)[0] + ".0/24"

    assert await _key_seen(app_with(client_key=subnet), ("203.0.113.5", 1)) == "203.0.113.0/24"


async def test_client_key_none_disables_keys():
    """client_key=None: the app's PasswordHash is handed out unbound."""
    assert await _key_seen(app_with(client_key=None), ("203.0.113.5", 1)) is None


async def test_client_key_returning_a_bad_key_is_a_type_error():
    """A client_key returning a list is a TypeError naming the type, never the value."""
    app = app_with(client_key=lambda request: ["203.0.113.5"])
    with pytest.raises(TypeError, match="list") as caught:
        await _key_seen(app, ("203.0.113.5", 1))
    assert "203.0.113.5" not in str(caught.value)


async def test_for_client_validates_and_copies():
    """for_client returns a bound copy; the original stays unbound; bad keys are TypeError."""
    ph = cheap()
    bound = ph.for_client("198.51.100.7", priority=1)
    assert (bound._key, bound._priority) == ("198.51.100.7", 1)
    assert (ph._key, ph._priority) == (None, 0)
    with pytest.raises(TypeError):
        ph.for_client(3.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority"):
        ph.for_client("x", priority=7)


async def test_bound_password_hash_gets_in_past_a_flood():
    """A client's averify gets in while a flood fills the pool; the flood's newest call is shed."""
    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0, name="keys")
    gate = threading.Event()
    outcomes: dict[str, object] = {}

    async def flood(n: int) -> None:
        try:
            outcomes[f"flood-{n}"] = await pool.run(gate.wait, 30, key=FLOOD)
        except Overloaded as refused:
            outcomes[f"flood-{n}"] = refused

    ph = cheap(pool)
    encoded = ph.hash("right")
    user = ph.for_client("198.51.100.7")
    async with anyio.create_task_group() as tg:
        for n in (1, 2, 3):
            tg.start_soon(flood, n)
            with anyio.fail_after(10):
                while pool.statistics().running + pool.statistics().queued < n:
                    await anyio.sleep(0.002)

        async def login() -> None:
            outcomes["user"] = await user.averify("right", encoded)

        tg.start_soon(login)
        with anyio.fail_after(10):
            while pool.statistics().shed < 1:
                await anyio.sleep(0.002)
        gate.set()
    assert outcomes["user"] is True
    shed = outcomes["flood-3"]
    assert isinstance(shed, Overloaded)
    assert shed.reason == "fair-share"
    pool.close()


@pytest.mark.parametrize("option", ["203.0.113.5", 42], ids=["str", "int"])
def test_a_client_key_that_is_not_callable_fails_when_the_lifespan_is_made(option):
    """lifespan(client_key=<not callable>) raises TypeError naming the type only."""
    with pytest.raises(TypeError, match="client_key") as caught:
        lifespan(client_key=option)
    assert type(option).__name__ in str(caught.value)
    assert str(option) not in str(caught.value)
