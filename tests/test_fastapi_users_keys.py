"""Client keys in loopsafe.fastapi_users: PasswordHelper.for_client, request_key, the example."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import loopsafe
from _keys import FLOOD_POOL, against_a_flood, shed_for_fair_share
from loopsafe import HashPool, Overloaded, PasswordHash, profiles
from loopsafe.fastapi_users import PasswordHelper
from loopsafe.starlette import lifespan, request_key

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_users_app.py"
CLIENT = ("203.0.113.5", 4000)


@pytest.fixture
def anyio_backend():
    """aiosqlite and SQLAlchemy's async engine need asyncio."""
    return "asyncio"


def cheap_helper(pool: HashPool | None = None) -> PasswordHelper:
    """A PasswordHelper with cheap parameters."""
    return PasswordHelper(PasswordHash.recommended(profile=profiles.CHEAP, pool=pool))


class TestForClient:
    """PasswordHelper.for_client, with the key loopsafe.starlette.request_key gives."""

    def test_for_client_validates_and_copies(self):
        """for_client returns a bound copy (its PasswordHash too); the original stays unbound."""
        helper = cheap_helper()
        bound = helper.for_client("198.51.100.7", priority=1)
        assert type(bound) is PasswordHelper
        assert (bound._key, bound._priority) == ("198.51.100.7", 1)
        assert (bound.password_hash._key, bound.password_hash._priority) == ("198.51.100.7", 1)
        assert (helper._key, helper.password_hash._key) == (None, None)
        assert bound.pool is helper.pool
        assert "198.51.100.7" not in repr(bound)
        with pytest.raises(TypeError, match="float") as caught:
            helper.for_client(3.5)  # type: ignore[arg-type]
        assert "3.5" not in str(caught.value)
        with pytest.raises(ValueError, match="priority"):
            helper.for_client("x", priority=7)

    async def test_the_async_twins_carry_the_key_past_a_flood(self):
        """A bound helper's ahash gets in past a flood from another key, which is shed."""
        pool = HashPool(**FLOOD_POOL, nice=0, name="helper-keys")
        helper = cheap_helper(pool).for_client("198.51.100.7")
        try:
            encoded, flood = await against_a_flood(
                pool, lambda: helper.ahash("pw"), flood_key="10.66.0.1"
            )
        finally:
            pool.close()
        assert encoded.startswith("argon2$")
        assert shed_for_fair_share(flood)

    async def test_averify_and_update_refused_when_its_own_key_floods(self):
        """averify_and_update passes the key: against a flood from that very key it is refused."""
        pool = HashPool(**FLOOD_POOL, nice=0, name="helper-keys")
        helper = cheap_helper(pool)
        encoded = helper.hash("pw")
        bound = helper.for_client("198.51.100.7")

        async def verify() -> object:
            try:
                return await bound.averify_and_update("pw", encoded)
            except Overloaded as refused:
                return refused

        try:
            refused, flood = await against_a_flood(pool, verify, flood_key="198.51.100.7")
        finally:
            pool.close()
        assert isinstance(refused, Overloaded)
        assert flood == [None, None, None]

    @pytest.mark.parametrize(
        ("client_key", "expected"),
        [
            pytest.param("default", "203.0.113.5", id="default-peer-address"),
            pytest.param(None, None, id="keys-off"),
            pytest.param(lambda request: ("tenant", 7), ["tenant", 7], id="custom"),
        ],
    )
    async def test_request_key_is_the_lifespans_key(self, client_key, expected):
        """for_client(request_key(request)) binds the key the lifespan's client_key picks."""
        helper = cheap_helper()

        async def key(request: Request) -> JSONResponse:
            return JSONResponse({"key": helper.for_client(request_key(request))._key})

        options = {} if client_key == "default" else {"client_key": client_key}
        app = Starlette(routes=[Route("/key", key)], lifespan=lifespan(**options))
        transport = httpx.ASGITransport(app=app, client=CLIENT)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        ):
            assert (await http.get("/key")).json()["key"] == expected

    async def test_request_key_with_a_bad_key_is_a_type_error_naming_the_type(self):
        """A lifespan client_key returning a list: request_key raises TypeError, no value shown."""
        app = Starlette(lifespan=lifespan(client_key=lambda request: [request.client.host]))
        request = Request({"type": "http", "app": app, "client": CLIENT, "headers": []})
        async with app.router.lifespan_context(app):
            with pytest.raises(TypeError, match="list") as caught:
                request_key(request)
        assert "203.0.113.5" not in str(caught.value)


def load_example(monkeypatch, **env: str):
    """Import a fresh copy of the example app (loopsafe, cheap parameters) under ``env``."""
    monkeypatch.setenv("USE_LOOPSAFE", "1")
    monkeypatch.setenv("LOOPSAFE_PROFILE", "cheap")
    monkeypatch.delenv("APP_DB", raising=False)
    monkeypatch.delenv("LOOPSAFE_CLIENT_KEYS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    name = "fastapi_users_example_keys"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


async def login_against_a_flood(module, flood_key) -> tuple[httpx.Response, list[object]]:
    """Start the example, shrink its pool, and log in (an unknown e-mail) against a flood."""
    app = module.app
    transport = httpx.ASGITransport(app=app, client=CLIENT)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://app") as client,
    ):
        pool = app.state.loopsafe_pool
        assert loopsafe.configure(**FLOOD_POOL) is pool  # the live default pool, reshaped

        def login():
            form = {"username": "nobody@example.org", "password": "pw"}
            return client.post("/auth/jwt/login", data=form)

        return await against_a_flood(pool, login, flood_key=flood_key)


class TestExample:
    """examples/fastapi_users_app.py: get_user_manager binds the client's key."""

    async def test_a_flood_from_another_address_is_shed_for_the_login(self, monkeypatch):
        """The login's dummy hash gets in past a flood from another key (400: unknown user)."""
        answer, flood = await login_against_a_flood(load_example(monkeypatch), "10.66.0.1")
        assert answer.status_code == 400
        assert answer.json()["detail"] == "LOGIN_BAD_CREDENTIALS"
        assert shed_for_fair_share(flood)

    async def test_a_flood_from_the_same_address_refuses_the_login(self, monkeypatch):
        """The login's key is its address: a flood from that address is not pushed out (503)."""
        answer, flood = await login_against_a_flood(load_example(monkeypatch), "203.0.113.5")
        assert answer.status_code == 503
        assert flood == [None, None, None]

    async def test_keys_off_is_first_come_first_served(self, monkeypatch):
        """LOOPSAFE_CLIENT_KEYS=0 (client_key=None): the login joins the unkeyed queue, 503."""
        module = load_example(monkeypatch, LOOPSAFE_CLIENT_KEYS="0")
        answer, flood = await login_against_a_flood(module, None)
        assert answer.status_code == 503
        assert flood == [None, None, None]
