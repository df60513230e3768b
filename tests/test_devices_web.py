"""Trusted devices first and throttled logins, through each web integration's own helpers.

One login app per framework (Starlette/FastAPI, Litestar, aiohttp): the
throttle is asked first (429 when spent), then the password is checked with
the integration's ``get_login_password_hash`` (``provide_login_password_hash``
on Litestar), and a success sets the device cookie. The app reports the
priority its hasher was bound to, so the test can see a returning device
served at ``TRUSTED_PRIORITY`` and everyone else at 0.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from litestar import Request, Response
from litestar.datastructures import State  # noqa: TC002 - Litestar reads handler annotations at runtime
from litestar.enums import RequestEncodingType
from litestar.params import Body

from loopsafe import PasswordHash, Throttled, profiles
from loopsafe.devices import TRUSTED_PRIORITY, DeviceCookies
from loopsafe.throttle import LoginThrottle

pytestmark = pytest.mark.anyio

DEVICES = DeviceCookies("k" * 40, secure=False)
RIGHT = "right-pw"


@pytest.fixture
def anyio_backend():
    """The frameworks' test clients run on asyncio."""
    return "asyncio"


@pytest.fixture
def stored():
    """The one account's stored hash (cheap parameters)."""
    return PasswordHash(profiles.CHEAP.hashers()).hash(RIGHT)


async def login_logic(password_hash, username, password, stored_hash, throttle, client, cookies):  # noqa: PLR0917 - the login's inputs, spelled out
    """The app's own login: throttle, then check; return (status, body, set a cookie?)."""
    trusted = DEVICES.verify(DEVICES.read(cookies), username)
    await throttle.acheck(username, client, trusted=trusted)
    ok = username == "bob" and await password_hash.averify(password, stored_hash)
    return (200 if ok else 401), {"priority": password_hash._priority}, ok


def starlette_app(stored_hash, throttle):
    """A Starlette app with loopsafe's lifespan and handlers."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from loopsafe.starlette import EXCEPTION_HANDLERS, get_login_password_hash, lifespan

    async def login(request: Request) -> JSONResponse:
        form = await request.form()
        username, password = str(form["username"]), str(form["password"])
        password_hash = await get_login_password_hash(request, username, DEVICES)
        status, body, ok = await login_logic(
            password_hash,
            username,
            password,
            stored_hash,
            throttle,
            request.client.host,
            request.cookies,
        )
        response = JSONResponse(body, status_code=status)
        if ok:
            DEVICES.set_cookie(response, username)
        return response

    return Starlette(
        routes=[Route("/login", login, methods=["POST"])],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan(password_hash=PasswordHash(profiles.CHEAP.hashers())),
    )


def litestar_app(stored_hash, throttle):
    """A Litestar app with loopsafe's plugin."""
    from litestar import Litestar, post

    from loopsafe.litestar import LoopsafePlugin, provide_login_password_hash

    @post("/login")
    async def login(
        request: Request[Any, Any, Any],
        state: State,
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        username, password = data["username"], data["password"]
        password_hash = await provide_login_password_hash(state, request, username, DEVICES)
        status, body, ok = await login_logic(
            password_hash,
            username,
            password,
            stored_hash,
            throttle,
            request.client.host,
            request.cookies,
        )
        response = Response(body, status_code=status)
        if ok:
            DEVICES.set_cookie(response, username)
        return response

    plugin = LoopsafePlugin(password_hash=PasswordHash(profiles.CHEAP.hashers()))
    return Litestar([login], plugins=[plugin])


def aiohttp_app(stored_hash, throttle):
    """An aiohttp app with loopsafe's setup (its middleware answers 429)."""
    from aiohttp import web

    from loopsafe.aiohttp import get_login_password_hash, setup

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        username, password = str(form["username"]), str(form["password"])
        password_hash = get_login_password_hash(request, username, DEVICES)
        status, body, ok = await login_logic(
            password_hash,
            username,
            password,
            stored_hash,
            throttle,
            request.remote,
            request.cookies,
        )
        response = web.json_response(body, status=status)
        if ok:
            DEVICES.set_cookie(response, username)
        return response

    app = web.Application()
    app.router.add_post("/login", login)
    setup(app, password_hash=PasswordHash(profiles.CHEAP.hashers()))
    return app


FRAMEWORKS = ["starlette", "litestar", "aiohttp"]


def httpx_poster(client):
    """``post(form, cookies)`` for an httpx-based client (Starlette's, Litestar's)."""

    async def post(form, cookies):
        client.cookies.clear()
        client.cookies.update(cookies)
        response = await client.post("/login", data=form)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
        return response.status_code, response.json(), response.cookies.get(DEVICES.cookie_name)

    return post


async def scenario(post):
    """Run the login scenario through ``post(form, cookies) -> (status, json, set_cookie)``."""
    status, body, cookie = await post({"username": "bob", "password": RIGHT}, {})
    assert (status, body["priority"]) == (200, 0)
    assert cookie is not None
    assert DEVICES.verify(cookie, "bob")
    jar = {DEVICES.cookie_name: cookie}
    status, body, _ = await post({"username": "bob", "password": RIGHT}, jar)
    assert (status, body["priority"]) == (200, TRUSTED_PRIORITY)
    status, body, _ = await post({"username": "alice", "password": RIGHT}, jar)
    assert (status, body["priority"]) == (401, 0)  # bob's cookie earns alice nothing
    status, body, _ = await post({"username": "alice", "password": "x"}, {})
    assert status == 429
    assert body["detail"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_returning_device_first_and_throttled_429(framework, stored):
    """A device cookie from a login raises the next login's priority; a spent budget is 429."""
    throttle = LoginThrottle(per_account="1/minute", per_client=None, per_device="10/minute")
    if framework == "aiohttp":
        from aiohttp.test_utils import TestClient, TestServer

        app = aiohttp_app(stored, throttle)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:

            async def post(form, cookies):
                client.session.cookie_jar.clear()
                response = await client.post("/login", data=form, cookies=cookies)
                morsel = response.cookies.get(DEVICES.cookie_name)
                if response.status == 429:
                    assert int(response.headers["Retry-After"]) >= 1
                return response.status, await response.json(), morsel and morsel.value

            await scenario(post)
        return
    if framework == "starlette":
        import httpx

        app = starlette_app(stored, throttle)
        context = app.router.lifespan_context(app)
        async with (
            context,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("203.0.113.9", 1234)),
                base_url="http://test",
            ) as client,
        ):
            await scenario(httpx_poster(client))
        return
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(litestar_app(stored, throttle)) as client:
        await scenario(httpx_poster(client))


def test_fastapi_users_helper_binds_a_returning_device():
    """``PasswordHelper.for_login`` binds the device's key and priority, else the client's."""
    from loopsafe.fastapi_users import PasswordHelper

    helper = PasswordHelper(PasswordHash(profiles.CHEAP.hashers()))
    token = DEVICES.issue("bob@example.com")
    trusted = helper.for_login("203.0.113.1", "bob@example.com", token, DEVICES)
    assert trusted._priority == TRUSTED_PRIORITY
    assert trusted._key[0] == "loopsafe-device"
    anonymous = helper.for_login("203.0.113.1", "eve@example.com", token, DEVICES)
    assert (anonymous._key, anonymous._priority) == ("203.0.113.1", 0)


def test_throttled_is_not_overloaded():
    """Throttled (429) and Overloaded (503) are distinct branches of LoopsafeError."""
    from loopsafe import Overloaded

    assert not issubclass(Throttled, Overloaded)
    assert not issubclass(Overloaded, Throttled)
