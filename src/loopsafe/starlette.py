"""Starlette and FastAPI: a 503 for `Overloaded`, a lifespan that owns the pool, a dependency.

Three pieces, each usable alone (a FastAPI app is a Starlette app, so nothing
here imports FastAPI)::

    from fastapi import Depends, FastAPI
    from loopsafe import PasswordHash
    from loopsafe.starlette import EXCEPTION_HANDLERS, get_password_hash, lifespan

    app = FastAPI(lifespan=lifespan(), exception_handlers=EXCEPTION_HANDLERS)

    @app.post("/login")
    async def login(..., ph: PasswordHash = Depends(get_password_hash)):
        ok, new_hash = await ph.averify_and_update(password, user.hash)

- `lifespan` configures loopsafe's default pool when the app starts, keeps a
  `PasswordHash` on ``app.state.password_hash``, runs the app's own lifespan
  inside, and closes the pool (waiting for hashes in flight) at shutdown.
- `overloaded_handler` answers `Overloaded` with HTTP 503, a ``Retry-After``
  header and a small JSON body; `pool_closed_handler` answers `PoolClosed`
  (a request caught by shutdown) with 503. `EXCEPTION_HANDLERS` maps both.
- `get_password_hash` is an async dependency returning the app's `PasswordHash`,
  bound to the requesting client's key (`PasswordHash.for_client`), so that
  under a flood each client gets a fair share of the pool. The key comes
  from the lifespan's ``client_key`` callable, by default `client_host`
  (``request.client.host``, the peer address). Behind a reverse proxy that
  is the proxy's address: see docs/fairness.md for taking the client from
  ``X-Forwarded-For`` safely. `request_key` returns that key (for code that
  hashes elsewhere: ``loopsafe.fastapi_users.PasswordHelper.for_client``).
"""

from __future__ import annotations

import inspect
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

try:
    from starlette.requests import Request  # noqa: TC002 - FastAPI reads annotations at runtime
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised by a test that hides starlette
    raise ImportError(
        "loopsafe.starlette needs Starlette (FastAPI includes it): "
        "pip install 'loopsafe[starlette]'"
    ) from exc

from loopsafe._api import PasswordHash  # noqa: TC001 - FastAPI reads annotations at runtime
from loopsafe._settings import DEFAULT_MAX_PENDING, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_NICE
from loopsafe._web import (
    AppOptions,
    client_password_hash,
    key_of,
    login_password_hash,
    refusal,
    retry_after_seconds,
)
from loopsafe.exceptions import Overloaded, PoolClosed, Throttled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
    from concurrent.futures import Executor
    from contextlib import AbstractAsyncContextManager

    from loopsafe._fair import Key
    from loopsafe._settings import PoolSettings
    from loopsafe.devices import DeviceCookies

__all__ = [
    "EXCEPTION_HANDLERS",
    "STATE_CLIENT_KEY",
    "STATE_LAG",
    "STATE_PASSWORD_HASH",
    "STATE_POOL",
    "client_host",
    "get_login_password_hash",
    "get_password_hash",
    "lifespan",
    "overloaded_handler",
    "pool_closed_handler",
    "request_key",
    "retry_after_seconds",
    "throttled_handler",
]

#: ``app.state`` attribute holding the app's `PasswordHash`.
STATE_PASSWORD_HASH: Final = "password_hash"  # noqa: S105 - an attribute name
#: ``app.state`` attribute holding the `HashPool` the lifespan configured.
STATE_POOL: Final = "loopsafe_pool"
#: ``app.state`` attribute holding the running `LoopLagMonitor` (``monitor_lag=True``).
STATE_LAG: Final = "loopsafe_lag"
#: ``app.state`` attribute holding the ``request -> key`` callable (None: no keys).
STATE_CLIENT_KEY: Final = "loopsafe_client_key"


def client_host(request: Request) -> str | None:
    """Return the peer's address (``request.client.host``), or None when unknown.

    The default client key. It is the address of whoever opened the TCP
    connection: behind a reverse proxy, the proxy. Headers such as
    ``X-Forwarded-For`` are not read: any client can send them, so trusting
    them by default would let a flood pick a fresh key per request.
    """
    client = request.client
    return client.host if client is not None else None


async def overloaded_handler(_request: Request, exc: Exception) -> Response:
    """Answer `Overloaded` with 503, ``Retry-After`` and ``{"detail", "retry_after"}``.

    Async on purpose: Starlette runs a synchronous handler on a thread.
    Register it for `Overloaded` (see `EXCEPTION_HANDLERS`).
    """
    if not isinstance(exc, Overloaded):
        raise exc
    return _refusal_response(exc)


async def throttled_handler(_request: Request, exc: Exception) -> Response:
    """Answer `Throttled` (`loopsafe.throttle`) with 429, ``Retry-After`` and a JSON body."""
    if not isinstance(exc, Throttled):
        raise exc
    return _refusal_response(exc)


async def pool_closed_handler(_request: Request, exc: Exception) -> Response:
    """Answer `PoolClosed` (a request caught by the server's shutdown) with a bare 503."""
    if not isinstance(exc, PoolClosed):
        raise exc
    return _refusal_response(exc)


def _refusal_response(exc: Overloaded | Throttled | PoolClosed) -> Response:
    answer = refusal(exc)
    assert answer is not None  # noqa: S101 - refusal() answers all three
    return JSONResponse(dict(answer.body), status_code=answer.status, headers=dict(answer.headers))


#: ``exception_handlers=`` for ``Starlette(...)`` or ``FastAPI(...)``: `Overloaded`
#: and `PoolClosed` become 503, `Throttled` 429. ``app.add_exception_handler(Overloaded,
#: overloaded_handler)`` does the same on an existing app.
EXCEPTION_HANDLERS: Final[Mapping[Any, Callable[[Request, Exception], Awaitable[Response]]]] = {
    Overloaded: overloaded_handler,
    PoolClosed: pool_closed_handler,
    Throttled: throttled_handler,
}


async def get_password_hash(request: Request) -> PasswordHash:
    """Return the app's `PasswordHash` for this client (``Depends(get_password_hash)``).

    The returned hasher's async methods pass the client's key (the lifespan's
    ``client_key(request)``, by default `client_host`) to the pool. Async so
    that FastAPI calls it on the loop rather than on a thread.

    Raises:
        RuntimeError: If the app has none: use `lifespan`, or set
            ``app.state.password_hash`` yourself.
        TypeError: If ``app.state.password_hash`` is something else, or the
            lifespan's ``client_key`` returned a bad key (see `request_key`).
    """
    return client_password_hash(
        getattr(request.app.state, STATE_PASSWORD_HASH, None),
        getattr(request.app.state, STATE_CLIENT_KEY, client_host),
        request,
        where="the lifespan's client_key",
        missing="pass lifespan=loopsafe.starlette.lifespan(...) to the app "
        "(it sets app.state.password_hash)",
    )


async def get_login_password_hash(
    request: Request, username: str, devices: DeviceCookies
) -> PasswordHash:
    """`get_password_hash` for a login: a trusted device goes first (`loopsafe.devices`).

    A valid device cookie for ``username`` in ``request.cookies`` makes the
    hasher pass the device's own key and a higher priority; anything else
    leaves the client's key. After a successful login, call
    ``devices.set_cookie(response, username)``.
    """
    return login_password_hash(await get_password_hash(request), devices, request.cookies, username)


def request_key(request: Request) -> Key:
    """Return the client key the app picks for ``request``: what `get_password_hash` binds.

    The lifespan's ``client_key(request)``, by default `client_host`; None
    when the lifespan was given ``client_key=None``.

    Raises:
        TypeError: If ``client_key`` returned something that cannot be a key
            (the message names its type, never its value).
    """
    client_key = getattr(request.app.state, STATE_CLIENT_KEY, client_host)
    if client_key is None:
        return None
    return key_of(client_key, request, "the lifespan's client_key")


def lifespan(
    app_lifespan: Callable[[Any], Any] | None = None,
    *,
    password_hash: PasswordHash | None = None,
    max_workers: int | None = None,
    max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
    max_pending: int = DEFAULT_MAX_PENDING,
    executor: Executor | None = None,
    nice: int = DEFAULT_NICE,
    host_limit: int | str | None = None,
    host_key: str | None = None,
    max_memory: int | None = None,
    monitor_lag: bool = False,
    client_key: Callable[[Request], Key] | None = client_host,
    settings: PoolSettings | None = None,
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """Return a lifespan that owns loopsafe's pool for the app's life, around the app's own.

    Its settings are checked when it is made (a bad one fails when the app
    is built, naming the setting). At startup it sets the default pool's bounds
    (`loopsafe.configure`) from these settings, stores the `PasswordHash` on
    ``app.state.password_hash`` and the pool on ``app.state.loopsafe_pool``,
    optionally starts a `LoopLagMonitor` on ``app.state.loopsafe_lag``, and then
    enters ``app_lifespan`` (whose state, if it yields one, passes through
    unchanged). At shutdown, after ``app_lifespan`` has exited, it stops the
    monitor and closes the pool, waiting for the hashes already running.

    Args:
        app_lifespan: The app's own lifespan: ``app -> async context manager``,
            or an async generator function (wrapped with `asynccontextmanager`).
            The pool is usable inside it, at startup and at shutdown.
        password_hash: The app's hasher; default `PasswordHash.recommended()`.
            One built with its own ``pool=`` keeps using (and owning) that pool.
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.
        host_limit: See `HashPool`; None reads ``LOOPSAFE_HOST_LIMIT``. With
            ``uvicorn --workers N`` or ``gunicorn -w N``, the workers share it.
        host_key: See `HashPool`.
        max_memory: See `HashPool`.
        monitor_lag: Measure the loop's lag for the app's life (for
            `loopsafe.prometheus`), with a bounded window of samples.
        client_key: ``request -> key`` for `get_password_hash`: the client
            each request hashes for, so a flood from one client cannot take
            the whole pool. Default `client_host`; None disables keys.
        settings: Every pool setting and ``monitor_lag`` as one
            `loopsafe.PoolSettings`, in place of the separate keywords above
            (used as given: build it with `PoolSettings.from_env` to honour
            ``LOOPSAFE_HOST_LIMIT``).

    Returns:
        A callable for ``Starlette(lifespan=...)`` or ``FastAPI(lifespan=...)``.

    Raises:
        TypeError: If ``client_key`` is neither a callable nor None,
            ``password_hash`` is not a `PasswordHash`, a setting has the wrong
            type, or ``settings`` and a separate keyword are both given.
        ValueError: If a setting is out of range (every problem is listed).
    """
    options = AppOptions.build(
        "lifespan",
        settings=settings,
        keywords={
            "max_workers": max_workers,
            "max_queue_wait": max_queue_wait,
            "max_pending": max_pending,
            "nice": nice,
            "host_limit": host_limit,
            "host_key": host_key,
            "max_memory": max_memory,
            "monitor_lag": monitor_lag,
        },
        executor=executor,
        password_hash=password_hash,
        client_key=client_key,
    )
    inner: Callable[[Any], Any] | None = app_lifespan
    if inner is not None and inspect.isasyncgenfunction(inner):
        inner = asynccontextmanager(inner)

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Any]:  # noqa: ANN401 - any Starlette subclass
        async with options.running() as running:
            setattr(app.state, STATE_POOL, running.pool)
            setattr(app.state, STATE_PASSWORD_HASH, options.password_hash)
            setattr(app.state, STATE_CLIENT_KEY, options.client_key)
            if running.lag is not None:
                setattr(app.state, STATE_LAG, running.lag)
            if inner is None:
                yield None
            else:
                async with inner(app) as state:
                    yield state

    return run
