"""loopsafe.starlette: 503 for Overloaded, the lifespan that owns the pool, the dependency."""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import threading

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import loopsafe
from loopsafe import HashPool, LoopLagMonitor, Overloaded, PasswordHash, PoolClosed, profiles
from loopsafe.starlette import (
    EXCEPTION_HANDLERS,
    get_password_hash,
    lifespan,
    overloaded_handler,
    retry_after_seconds,
)

pytestmark = pytest.mark.anyio


def cheap() -> PasswordHash:
    """The cheap profile, PBKDF2 preferred (default pool)."""
    return PasswordHash(profiles.CHEAP.hashers())


def client_for(app: Starlette) -> httpx.AsyncClient:
    """An httpx client calling the ASGI app in-process (no lifespan: tests enter it)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def raising(exc: Exception) -> Starlette:
    """An app whose only route raises ``exc``."""

    async def boom(request: Request) -> JSONResponse:
        raise exc

    return Starlette(routes=[Route("/", boom)], exception_handlers=EXCEPTION_HANDLERS)


class TestRetryAfter:
    """Retry-After is whole seconds, rounded up, at least one."""

    @pytest.mark.parametrize(
        ("retry_after", "header"),
        [
            pytest.param(0.0, 1, id="zero-is-one"),
            pytest.param(0.001, 1, id="a-millisecond-is-one"),
            pytest.param(1.0, 1, id="exactly-one"),
            pytest.param(1.2, 2, id="rounds-up"),
            pytest.param(2.999, 3, id="rounds-up-near-three"),
            pytest.param(math.inf, 1, id="infinite-is-one"),
            pytest.param(math.nan, 1, id="nan-is-one"),
        ],
    )
    def test_retry_after_seconds(self, retry_after, header):
        """retry_after_seconds turns the pool's float estimate into a valid header value."""
        assert retry_after_seconds(retry_after) == header
        refusal = Overloaded(retry_after, estimated_wait=1.0, queued=1)
        assert refusal.retry_after_header == str(header)  # the one rounding every integration uses


class TestExceptionHandlers:
    """Overloaded and PoolClosed become 503 with a small JSON body."""

    async def test_overloaded_is_503_with_retry_after(self):
        """An Overloaded raised in a route answers 503, Retry-After rounded up, JSON detail."""
        app = raising(Overloaded(1.2, estimated_wait=3.0, queued=7))
        async with client_for(app) as client:
            response = await client.get("/")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "2"
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body == {"detail": "Password hashing is busy; retry later.", "retry_after": 2}

    async def test_pool_closed_is_503_without_retry_after(self):
        """A request caught by shutdown (PoolClosed) answers a bare 503."""
        app = raising(PoolClosed("closed"))
        async with client_for(app) as client:
            response = await client.get("/")
        assert response.status_code == 503
        assert "Retry-After" not in response.headers
        assert response.json() == {"detail": "The server is shutting down."}

    async def test_handler_rejects_other_exceptions(self):
        """overloaded_handler re-raises anything that is not Overloaded (a wiring mistake)."""
        request = Request({"type": "http", "method": "GET", "headers": [], "path": "/"})
        with pytest.raises(KeyError):
            await overloaded_handler(request, KeyError("x"))

    async def test_real_admission_refusal_is_503(self):
        """A pool that is full refuses the next hash, and the client sees 503 + Retry-After."""
        release = threading.Event()
        started = threading.Event()

        def blocking() -> str:
            started.set()
            if not release.wait(30):
                raise RuntimeError("never released")
            return "done"

        async def hold(request: Request) -> JSONResponse:
            ph = await get_password_hash(request)
            return JSONResponse({"result": await ph.pool.run(blocking)})

        app = Starlette(
            routes=[Route("/hold", hold)],
            exception_handlers=EXCEPTION_HANDLERS,
            lifespan=lifespan(password_hash=cheap(), max_workers=1, max_pending=1),
        )
        results: dict[str, httpx.Response] = {}

        async def get(key: str) -> None:
            results[key] = await client.get("/hold")

        async with app.router.lifespan_context(app), client_for(app) as client:
            pool = app.state.loopsafe_pool
            async with anyio.create_task_group() as tg:
                tg.start_soon(get, "running")
                await anyio.to_thread.run_sync(started.wait, 10)
                tg.start_soon(get, "queued")
                with anyio.fail_after(10):
                    while pool.statistics().queued < 1:
                        await anyio.sleep(0.005)
                refused = await client.get("/hold")
                release.set()
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert results["running"].json() == {"result": "done"}
        assert results["queued"].json() == {"result": "done"}
        assert pool.statistics().rejected == 1


class TestLifespan:
    """The lifespan owns the default pool for the app's life, around the app's own lifespan."""

    async def test_configures_stores_and_closes(self):
        """Startup configures the default pool and app.state; shutdown closes that pool."""
        ph = cheap()
        app = Starlette(
            lifespan=lifespan(password_hash=ph, max_workers=1, max_queue_wait=2.5, nice=3)
        )
        async with app.router.lifespan_context(app):
            pool = app.state.loopsafe_pool
            assert pool is loopsafe.default_pool()
            assert (pool.max_workers, pool.max_queue_wait, pool.nice) == (1, 2.5, 3)
            assert app.state.password_hash is ph
            assert ph.verify("pw", await ph.ahash("pw"))
        assert pool.closed
        assert loopsafe.default_pool() is not pool  # a fresh default takes its place

    async def test_default_password_hash_is_recommended(self):
        """Without password_hash=, the app gets PasswordHash.recommended() (Argon2 first)."""
        app = Starlette(lifespan=lifespan())
        async with app.router.lifespan_context(app):
            assert app.state.password_hash.preferred.algorithm == "argon2"

    async def test_app_lifespan_runs_inside_with_the_pool(self):
        """The app's own startup and shutdown run inside, and can hash on the pool."""
        seen: list[str] = []

        @contextlib.asynccontextmanager
        async def own(app: Starlette):
            ph = app.state.password_hash
            seen.append(await ph.ahash("admin"))
            yield
            seen.append(str(ph.verify("admin", seen[0])))
            seen.append(str(app.state.loopsafe_pool.closed))

        app = Starlette(lifespan=lifespan(own, password_hash=cheap()))
        async with app.router.lifespan_context(app):
            assert len(seen) == 1
        assert seen[1:] == ["True", "False"]  # shutdown ran before the pool closed
        assert app.state.loopsafe_pool.closed

    async def test_async_generator_lifespan_is_accepted(self):
        """A bare async generator function works as the app's lifespan too."""
        events: list[str] = []

        async def own(app: Starlette):
            events.append("start")
            yield
            events.append("stop")

        app = Starlette(lifespan=lifespan(own, password_hash=cheap()))
        async with app.router.lifespan_context(app):
            assert events == ["start"]
        assert events == ["start", "stop"]

    async def test_pool_is_closed_when_startup_fails(self):
        """If the app's own startup raises, the pool is still closed."""

        @contextlib.asynccontextmanager
        async def broken(app: Starlette):
            raise RuntimeError("database down")
            yield  # pragma: no cover

        app = Starlette(lifespan=lifespan(broken, password_hash=cheap()))
        with pytest.raises(RuntimeError, match="database down"):
            async with app.router.lifespan_context(app):
                pass  # pragma: no cover
        assert app.state.loopsafe_pool.closed

    async def test_monitor_lag(self):
        """monitor_lag=True measures the loop for the app's life and stops at shutdown."""
        app = Starlette(lifespan=lifespan(password_hash=cheap(), monitor_lag=True))
        async with app.router.lifespan_context(app):
            monitor = app.state.loopsafe_lag
            assert isinstance(monitor, LoopLagMonitor)
            assert not monitor.keep_all  # bounded memory in a server
            with anyio.fail_after(10):
                while monitor.count < 3:
                    await anyio.sleep(0.01)
        count = monitor.count
        await anyio.sleep(0.05)
        assert monitor.count == count

    async def test_lifespan_state_passes_through(self):
        """State the app's own lifespan yields is what the server receives, unchanged."""

        @contextlib.asynccontextmanager
        async def own(app: Starlette):
            yield {"greeting": "hello"}

        app = Starlette(lifespan=lifespan(own, password_hash=cheap()))
        async with app.router.lifespan_context(app) as state:
            assert state == {"greeting": "hello"}

    async def test_no_state_without_an_app_lifespan(self):
        """Alone, the lifespan yields None, so servers without lifespan state still work."""
        app = Starlette(lifespan=lifespan(password_hash=cheap()))
        async with app.router.lifespan_context(app) as state:
            assert state is None


class TestDependency:
    """get_password_hash returns the app's PasswordHash, or says how to provide one."""

    async def test_fastapi_depends(self):
        """FastAPI injects the app's PasswordHash through Depends(get_password_hash)."""
        from fastapi import Depends, FastAPI

        ph = cheap()
        app = FastAPI(lifespan=lifespan(password_hash=ph), exception_handlers=EXCEPTION_HANDLERS)

        @app.get("/algo")
        async def algo(
            hasher: PasswordHash = Depends(get_password_hash),  # noqa: B008, FAST002 - the FastAPI idiom shown in the docs
        ) -> dict[str, str]:
            # The app's hasher, bound to this client's key (PasswordHash.for_client).
            assert hasher.hashers is ph.hashers
            assert hasher._key == "127.0.0.1"
            return {"algorithm": hasher.preferred.algorithm}

        async with app.router.lifespan_context(app), client_for(app) as client:
            response = await client.get("/algo")
        assert response.json() == {"algorithm": "pbkdf2_sha256"}

    async def test_missing_password_hash(self):
        """Without the lifespan, the error names the fix."""
        app = Starlette()
        request = Request({"type": "http", "app": app, "headers": [], "path": "/"})
        with pytest.raises(RuntimeError, match=r"lifespan=loopsafe\.starlette\.lifespan"):
            await get_password_hash(request)

    async def test_wrong_type(self):
        """Something else on app.state.password_hash (say pwdlib's) is a TypeError."""
        app = Starlette()
        app.state.password_hash = object()
        request = Request({"type": "http", "app": app, "headers": [], "path": "/"})
        with pytest.raises(TypeError, match="not a loopsafe PasswordHash"):
            await get_password_hash(request)


def test_missing_starlette_names_the_extra(monkeypatch):
    """Importing loopsafe.starlette without Starlette says which extra to install."""
    for name in list(sys.modules):
        if name == "starlette" or name.startswith("starlette."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "loopsafe.starlette", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'loopsafe\[starlette\]'"):
        importlib.import_module("loopsafe.starlette")


async def test_private_pool_of_a_password_hash_is_left_alone(anyio_backend):
    """A PasswordHash built with its own pool keeps it; the lifespan closes only its own."""
    own_pool = HashPool(1)
    ph = PasswordHash(profiles.CHEAP.hashers(), pool=own_pool)
    app = Starlette(lifespan=lifespan(password_hash=ph))
    async with app.router.lifespan_context(app):
        assert app.state.password_hash.pool is own_pool
    assert app.state.loopsafe_pool.closed
    assert not own_pool.closed
    own_pool.close()
