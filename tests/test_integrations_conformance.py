"""Every web integration gives every guarantee: the conformance table of tests/_conformance.py.

Each integration is a real app, built the way the docs build it, driven in
this process over real requests: httpx's ``ASGITransport`` for the ASGI apps
(FastAPI/Starlette, Litestar, fastapi-users in FastAPI, advanced-alchemy in
Litestar) and aiohttp's test server on 127.0.0.1 for aiohttp. Every app has
one ``POST /login`` that verifies ``{"password"}`` against a stored hash with
the integration's own path, and reads the client's key from an ``x-client``
header (a custom ``client_key``, as docs/fairness.md shows for proxies).

Django's row runs in tests/django/test_conformance.py, from the same table.
"""

from __future__ import annotations

import math
import os
import re
import threading
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from _conformance import GUARANTEES, INTEGRATIONS, NOT_APPLICABLE, cells
from _keys import against_a_flood, shed_for_fair_share
from loopsafe import Argon2Hasher, PasswordHash, PBKDF2Hasher, PoolSettings, default_pool
from loopsafe.hashers import _base as hasher_base
from loopsafe.starlette import get_password_hash

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from loopsafe import HashPool, LoopLagMonitor

pytestmark = pytest.mark.anyio

WEB = tuple(name for name in INTEGRATIONS if name != "django")
PASSWORD = "correct horse battery staple"


@pytest.fixture
def anyio_backend():
    """Litestar and aiohttp run on asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def cold_process():
    """Each cell starts as a fresh server process would: no pool, no measured hash cost."""
    default_pool().close()  # the next configure() builds a new pool
    hasher_base._ESTIMATES.clear()  # a fresh process has measured nothing yet
    yield
    default_pool().close()


# -- the apps ------------------------------------------------------------------------------


@dataclass
class Answer:
    """One HTTP answer: status, the Retry-After header, the body as text."""

    status: int
    retry_after: str | None
    text: str


@dataclass
class Served:
    """A running app: log in through it, reach its lag monitor."""

    login: Callable[..., Any]
    lag: Callable[[], LoopLagMonitor | None]


def header_key(request: Any) -> str | None:
    """The client key: the ``x-client`` header (None: the shared key)."""
    return request.headers.get("x-client")


async def _asgi_login(app: Any, password: str, client: str | None) -> Answer:
    headers = {} if client is None else {"x-client": client}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.post("/login", json={"password": password}, headers=headers)
    return Answer(response.status_code, response.headers.get("retry-after"), response.text)


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan as a server does: startup, then shutdown at exit."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        started = await from_app.receive()
        if started["type"] != "lifespan.startup.complete":
            raise RuntimeError(started.get("message", "startup failed"))
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            await from_app.receive()


def fastapi_app(
    settings: PoolSettings, password_hash: PasswordHash, stored: str, *, helper: bool
) -> FastAPI:
    """FastAPI with loopsafe's lifespan; /login through get_password_hash or fastapi-users."""
    from loopsafe.fastapi_users import PasswordHelper
    from loopsafe.starlette import EXCEPTION_HANDLERS, lifespan, request_key

    app = FastAPI(
        lifespan=lifespan(password_hash=password_hash, client_key=header_key, settings=settings),
        exception_handlers=EXCEPTION_HANDLERS,
    )
    password_helper = PasswordHelper(password_hash)

    if helper:

        @app.post("/login")
        async def login_with_helper(request: Request) -> dict[str, bool]:
            body = await request.json()
            bound = password_helper.for_client(request_key(request))
            ok, _ = await bound.averify_and_update(body["password"], stored)
            return {"ok": ok}

    else:

        @app.post("/login")
        async def login(
            request: Request, ph: Annotated[PasswordHash, Depends(get_password_hash)]
        ) -> dict[str, bool]:
            body = await request.json()
            ok, _ = await ph.averify_and_update(body["password"], stored)
            return {"ok": ok}

    return app


def litestar_app(
    settings: PoolSettings, password_hash: PasswordHash, stored: str, *, column: bool
) -> Any:
    """Litestar with LoopsafePlugin; /login through the dependency or advanced-alchemy's hasher."""
    from litestar import Litestar, Request, post
    from litestar.di import NamedDependency

    from loopsafe.advanced_alchemy import LoopsafeHasher
    from loopsafe.litestar import LoopsafePlugin

    hasher = LoopsafeHasher(password_hash)

    @post(
        "/login",
        status_code=200,
        signature_namespace={"Request": Request, "NamedDependency": NamedDependency},
    )
    async def login(
        request: Request[Any, Any, Any], password_hash: NamedDependency[PasswordHash]
    ) -> dict[str, bool]:
        body = await request.json()
        if column:
            return {"ok": await hasher.averify(body["password"], stored)}
        ok, _ = await password_hash.averify_and_update(body["password"], stored)
        return {"ok": ok}

    plugin = LoopsafePlugin(password_hash=password_hash, client_key=header_key, settings=settings)
    return Litestar([login], plugins=[plugin])


@asynccontextmanager
async def serve(
    integration: str, settings: PoolSettings, password_hash: PasswordHash, stored: str
) -> AsyncIterator[Served]:
    """Build ``integration``'s app with these settings, start it, and hand out its login."""
    if integration == "aiohttp":
        async with _serve_aiohttp(settings, password_hash, stored) as served:
            yield served
        return
    if integration in {"starlette", "fastapi_users"}:
        app = fastapi_app(settings, password_hash, stored, helper=integration == "fastapi_users")

        def lag() -> LoopLagMonitor | None:
            return getattr(app.state, "loopsafe_lag", None)

    else:
        app = litestar_app(settings, password_hash, stored, column=integration != "litestar")

        def lag() -> LoopLagMonitor | None:
            return app.state.get("loopsafe_lag")

    async def login(password: str = PASSWORD, client: str | None = None) -> Answer:
        return await _asgi_login(app, password, client)

    async with asgi_lifespan(app):
        yield Served(login, lag)


@asynccontextmanager
async def _serve_aiohttp(
    settings: PoolSettings, password_hash: PasswordHash, stored: str
) -> AsyncIterator[Served]:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    import loopsafe.aiohttp

    async def login(request: web.Request) -> web.Response:
        body = await request.json()
        ph = loopsafe.aiohttp.get_password_hash(request)
        ok, _ = await ph.averify_and_update(body["password"], stored)
        return web.json_response({"ok": ok})

    app = web.Application()
    loopsafe.aiohttp.setup(
        app, password_hash=password_hash, client_key=header_key, settings=settings
    )
    app.router.add_post("/login", login)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:

        async def post(password: str = PASSWORD, who: str | None = None) -> Answer:
            headers = {} if who is None else {"x-client": who}
            response = await client.post("/login", json={"password": password}, headers=headers)
            text = await response.text()
            return Answer(response.status, response.headers.get("Retry-After"), text)

        yield Served(post, lambda: app.get(loopsafe.aiohttp.LAG_KEY))


def build_with(integration: str, **options: Any) -> None:
    """Build ``integration``'s app with these pool options (what a bad setting must stop)."""
    if integration == "starlette":
        from loopsafe.starlette import lifespan

        FastAPI(lifespan=lifespan(**options))
    elif integration == "litestar":
        from litestar import Litestar

        from loopsafe.litestar import LoopsafePlugin

        Litestar([], plugins=[LoopsafePlugin(**options)])
    elif integration == "aiohttp":
        from aiohttp import web

        import loopsafe.aiohttp

        loopsafe.aiohttp.setup(web.Application(), **options)
    else:  # pragma: no cover - the table lists no other
        raise AssertionError(integration)


async def burst(served: Served, n: int, client: str | None = None) -> list[Answer]:
    """``n`` logins at once; their answers."""
    answers: list[Answer] = []

    async def one() -> None:
        answers.append(await served.login(PASSWORD, client))

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
    return answers


@asynccontextmanager
async def sampling(pool: HashPool, every: float = 0.001) -> AsyncIterator[list[Any]]:
    """Read ``pool.statistics()`` every millisecond inside the block; the samples."""
    samples: list[Any] = []
    done = anyio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(pool.statistics())
            await anyio.sleep(every)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sample)
        try:
            yield samples
        finally:
            done.set()


def pbkdf2() -> PasswordHash:
    """PBKDF2 at 60,000 iterations: tens of milliseconds a hash here, a cost a burst can feel."""
    return PasswordHash([PBKDF2Hasher(iterations=60_000)])


# -- the table itself ------------------------------------------------------------------------


def test_the_table_names_every_cell_once():
    """Every not-applicable cell names a real integration and guarantee, with a reason."""
    for (integration, guarantee), reason in NOT_APPLICABLE.items():
        assert integration in INTEGRATIONS
        assert guarantee in GUARANTEES
        assert len(reason) > 40
    for integration in INTEGRATIONS:
        assert cells(integration), integration


WEB_CELLS = [
    pytest.param(integration, guarantee, id=f"{integration}-{guarantee}")
    for integration in WEB
    for guarantee in cells(integration)
]


def test_every_web_cell_has_a_test():
    """Each applicable cell of the web integrations is run by a test of this module."""
    tested = {guarantee for guarantee in GUARANTEES if f"check_{guarantee}" in globals()}
    for integration in WEB:
        assert set(cells(integration)) <= tested, integration


@pytest.mark.parametrize(("integration", "guarantee"), WEB_CELLS)
async def test_integration_gives_the_guarantee(integration, guarantee, tmp_path, monkeypatch):
    """The integration's app gives this guarantee (see the table in tests/_conformance.py)."""
    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("LOOPSAFE_HOST_LIMIT", raising=False)
    await globals()[f"check_{guarantee}"](integration)


# -- one check per guarantee ------------------------------------------------------------------


async def check_cold_burst_refused(integration: str) -> None:
    """A freshly started app refuses most of a burst it cannot serve in time, with 503s.

    One worker, ``max_queue_wait=0.1``, a hash of tens of milliseconds: a few
    logins fit, the rest must be refused at once, never queued for seconds.
    """
    ph = pbkdf2()
    stored = ph.hash(PASSWORD)
    settings = PoolSettings(max_workers=1, max_queue_wait=0.1)
    async with serve(integration, settings, ph, stored) as served:
        answers = await burst(served, 24)
    statuses = sorted(answer.status for answer in answers)
    refused = statuses.count(503)
    assert refused >= 8, statuses
    assert statuses.count(200) + refused == 24, statuses


async def check_host_limit(integration: str) -> None:
    """With ``host_limit=1`` the app's pool runs one hash at a time, though it has 2 workers."""
    ph = pbkdf2()
    stored = ph.hash(PASSWORD)
    key = f"conformance-{uuid.uuid4().hex[:12]}"
    settings = PoolSettings(max_workers=2, max_queue_wait=None, host_limit=1, host_key=key)
    async with serve(integration, settings, ph, stored) as served:
        pool = default_pool()
        assert (pool.host_limit, pool.host_key) == (1, key)
        async with sampling(pool) as samples:
            answers = await burst(served, 6)
    assert [answer.status for answer in answers] == [200] * 6
    held = [sample.host_held for sample in samples]
    assert max(held) == 1, held


async def check_max_memory(integration: str) -> None:
    """The app declares each Argon2 hash's memory, and the pool keeps the sum within max_memory."""
    argon2 = Argon2Hasher(time_cost=4, memory_cost=4096, parallelism=1)
    ph = PasswordHash([argon2])
    stored = ph.hash(PASSWORD)
    one = argon2.memory_per_hash()
    settings = PoolSettings(max_workers=2, max_queue_wait=None, max_memory=one)
    async with serve(integration, settings, ph, stored) as served:
        pool = default_pool()
        async with sampling(pool) as samples:
            answers = await burst(served, 6)
    assert [answer.status for answer in answers] == [200] * 6
    in_use = [sample.memory_in_use for sample in samples]
    assert max(in_use) == one, "the hashes' memory never reached the pool"
    assert all(used <= one for used in in_use), "two hashes held memory at once"


async def check_client_key(integration: str) -> None:
    """The request's key reaches the pool: refused behind its own flood, served past another's."""
    ph = pbkdf2()
    stored = ph.hash(PASSWORD)
    settings = PoolSettings(max_workers=1, max_pending=2, max_queue_wait=None)
    async with serve(integration, settings, ph, stored) as served:
        pool = default_pool()
        own, outcomes = await against_a_flood(
            pool, lambda: served.login(PASSWORD, "client-a"), flood_key="client-a"
        )
        assert own.status == 503
        assert outcomes == [None, None, None]
        other, outcomes = await against_a_flood(
            pool, lambda: served.login(PASSWORD, "client-b"), flood_key="client-a"
        )
        assert other.status == 200
        assert shed_for_fair_share(outcomes)


async def check_overloaded_503(integration: str) -> None:
    """A login the pool refuses is answered 503 with a whole-second Retry-After, at once."""
    ph = pbkdf2()
    stored = ph.hash(PASSWORD)
    settings = PoolSettings(max_workers=1, max_pending=1, max_queue_wait=None)
    gate = threading.Event()
    async with serve(integration, settings, ph, stored) as served:
        pool = default_pool()
        try:
            async with anyio.create_task_group() as tg:
                # One call running, then one queued: the queue is full (a worker
                # that has not yet taken the first would leave no room for the second).
                for field in ("running", "queued"):
                    tg.start_soon(pool.run, gate.wait, 30)
                    with anyio.fail_after(10):
                        while getattr(pool.statistics(), field) < 1:
                            await anyio.sleep(0.002)
                with anyio.fail_after(5):
                    answer = await served.login(PASSWORD, None)
                gate.set()
        finally:
            gate.set()
    assert answer.status == 503
    assert answer.retry_after is not None
    assert re.fullmatch(r"[1-9][0-9]*", answer.retry_after)
    assert PASSWORD not in answer.text


async def check_lag_monitor(integration: str) -> None:
    """``monitor_lag=True`` runs a lag monitor for the app's life, measuring the loop."""
    ph = pbkdf2()
    settings = PoolSettings(monitor_lag=True)
    async with serve(integration, settings, ph, ph.hash(PASSWORD)) as served:
        monitor = served.lag()
        assert monitor is not None, "the app keeps no running LoopLagMonitor"
        with anyio.fail_after(10):
            while monitor.recent().samples < 3:
                await anyio.sleep(0.01)
    async with serve(integration, PoolSettings(), ph, ph.hash(PASSWORD)) as served:
        assert served.lag() is None


async def check_bad_settings_fail_at_start(integration: str) -> None:
    """A bad setting stops the app being built, in one message naming each bad setting."""
    with pytest.raises(ValueError, match="max_queue_wait") as caught:
        build_with(integration, max_queue_wait=math.inf)
    assert "inf" in str(caught.value)
    with pytest.raises(ValueError, match=r"max_workers.*nice") as caught:
        build_with(integration, max_workers=0, nice=99)
    with pytest.raises(TypeError, match=r"max_queue_wait.*bool|bool.*max_queue_wait"):
        build_with(integration, max_queue_wait=True)
    with pytest.raises(TypeError, match="PoolSettings"):
        build_with(integration, settings={"max_workers": 2})
    with pytest.raises(TypeError, match="not both"):
        build_with(integration, settings=PoolSettings(), max_workers=2)
    assert not os.environ.get("LOOPSAFE_HOST_LIMIT")


# -- the same guarantee without an app: the engine's part --------------------------------------


@pytest.mark.parametrize("path", ["password-hash", "raw-pool-run"])
async def test_a_cold_pool_refuses_a_burst_without_a_start_up_call(path):
    """A bare PasswordHash or HashPool.run on a fresh pool refuses most of a burst it cannot run."""
    from loopsafe import HashPool, Overloaded

    ph = pbkdf2()
    stored = ph.hash(PASSWORD)
    pool = HashPool(settings=PoolSettings(max_workers=1, max_queue_wait=0.1))
    refused = 0

    async def one() -> None:
        nonlocal refused
        try:
            if path == "password-hash":
                await PasswordHash(ph.hashers, pool=pool).averify(PASSWORD, stored)
            else:
                await pool.run(ph.verify, PASSWORD, stored)
        except Overloaded:
            refused += 1

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(24):
                tg.start_soon(one)
    finally:
        pool.close()
    assert refused >= 8
