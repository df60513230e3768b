"""aiohttp: `setup` gives an app loopsafe's pool for its life and answers overload with 503.

::

    from aiohttp import web
    import loopsafe.aiohttp

    async def login(request: web.Request) -> web.Response:
        ph = loopsafe.aiohttp.get_password_hash(request)
        ok, new_hash = await ph.averify_and_update(password, stored)
        ...

    app = web.Application()
    loopsafe.aiohttp.setup(app)
    app.router.add_post("/login", login)

`setup` checks its settings at once (a bad one fails before the server
starts, not at the first login) and adds to the app:

- a cleanup context, ahead of the app's own, that configures loopsafe's default
  pool at startup, keeps it under ``app[POOL_KEY]`` and the `PasswordHash` under
  ``app[PASSWORD_HASH_KEY]`` and, with ``PoolSettings(monitor_lag=True)``, a
  running `LoopLagMonitor` under ``app[LAG_KEY]``, and closes the pool at
  cleanup (waiting for the hashes already running);
- `overload_middleware`, first: `Overloaded` becomes 503 with ``Retry-After``
  and ``{"detail", "retry_after"}``, `PoolClosed` (a request caught by the
  shutdown) a bare 503.

`get_password_hash` returns the app's `PasswordHash` from a request (sub-apps
see their parent's) or from an app. From a request it is bound to the
requesting client's key (`PasswordHash.for_client`), so that under a flood
each client gets a fair share of the pool. The key comes from ``setup``'s
``client_key``, by default `client_remote` (``request.remote``, the peer
address). Behind a reverse proxy that is the proxy's address:
``X-Forwarded-For`` is not read, since any client can send it; see
docs/fairness.md for reading it safely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - exercised by a test that hides aiohttp
    raise ImportError("loopsafe.aiohttp needs aiohttp: pip install 'loopsafe[aiohttp]'") from exc

from loopsafe._api import PasswordHash
from loopsafe._lag import LoopLagMonitor
from loopsafe._pool import HashPool
from loopsafe._settings import DEFAULT_MAX_PENDING, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_NICE
from loopsafe._web import AppOptions, client_password_hash, login_password_hash, refusal
from loopsafe.exceptions import Overloaded, PoolClosed, Throttled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from concurrent.futures import Executor

    from aiohttp.typedefs import Handler

    from loopsafe._fair import Key
    from loopsafe._settings import PoolSettings
    from loopsafe.devices import DeviceCookies

__all__ = [
    "CLIENT_KEY_KEY",
    "LAG_KEY",
    "PASSWORD_HASH_KEY",
    "POOL_KEY",
    "client_remote",
    "get_login_password_hash",
    "get_password_hash",
    "overload_middleware",
    "setup",
]

#: The app key holding the app's `PasswordHash`.
PASSWORD_HASH_KEY: Final = web.AppKey("loopsafe_password_hash", PasswordHash)
#: The app key holding the `HashPool` that `setup`'s cleanup context configured.
POOL_KEY: Final = web.AppKey("loopsafe_pool", HashPool)
#: The app key holding the running `LoopLagMonitor` (``PoolSettings(monitor_lag=True)``).
LAG_KEY: Final = web.AppKey("loopsafe_lag", LoopLagMonitor)
#: The app key holding `setup`'s ``client_key`` (``request -> key``, or None: no keys).
CLIENT_KEY_KEY: Final[web.AppKey[Callable[[web.Request], Key] | None]] = web.AppKey(
    "loopsafe_client_key"
)


def client_remote(request: web.Request) -> str | None:
    """Return the peer's address (``request.remote``), or None when unknown.

    The default client key. It is the address of whoever opened the TCP
    connection: behind a reverse proxy, the proxy. Headers such as
    ``X-Forwarded-For`` are not read: any client can send them, so trusting
    them by default would let a flood pick a fresh key per request.
    """
    return request.remote or None


@web.middleware
async def overload_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `Overloaded` with 503 + ``Retry-After``, `Throttled` 429, `PoolClosed` 503."""
    try:
        return await handler(request)
    except (Overloaded, Throttled, PoolClosed) as exc:
        answer = refusal(exc)
        assert answer is not None  # noqa: S101 - refusal() answers all three
        return web.json_response(
            dict(answer.body), status=answer.status, headers=dict(answer.headers)
        )


def get_password_hash(source: web.Request | web.Application) -> PasswordHash:
    """Return the app's `PasswordHash`, from a request (parents included) or an app.

    From a request, the hasher's async methods pass the client's key
    (``setup``'s ``client_key(request)``, by default `client_remote`) to the
    pool; from an app, or with ``client_key=None``, it is the app's
    `PasswordHash` itself, unbound.

    Raises:
        RuntimeError: If the app has none: call `setup` on it (or its parent).
        TypeError: If ``source`` is neither a request nor an application, or
            ``client_key`` returned a bad key (the message names its type,
            never its value).
    """
    if isinstance(source, web.Request):
        return client_password_hash(
            source.config_dict.get(PASSWORD_HASH_KEY),
            source.config_dict.get(CLIENT_KEY_KEY, client_remote),
            source,
            where="setup(client_key=...)",
            missing=_MISSING,
        )
    if isinstance(source, web.Application):  # an app has no client: unbound
        return client_password_hash(
            source.get(PASSWORD_HASH_KEY), None, source, where="", missing=_MISSING
        )
    raise TypeError(f"expected an aiohttp Request or Application, not {type(source).__name__}")


_MISSING: Final = "call loopsafe.aiohttp.setup(app) before the app starts"


def get_login_password_hash(
    request: web.Request, username: str, devices: DeviceCookies
) -> PasswordHash:
    """`get_password_hash` for a login: a trusted device goes first (`loopsafe.devices`).

    A valid device cookie for ``username`` makes the hasher pass the device's
    own key and a higher priority; after a successful login, call
    ``devices.set_cookie(response, username)``.
    """
    return login_password_hash(get_password_hash(request), devices, request.cookies, username)


def setup(
    app: web.Application,
    *,
    password_hash: PasswordHash | None = None,
    max_workers: int | None = None,
    max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
    max_pending: int = DEFAULT_MAX_PENDING,
    executor: Executor | None = None,
    nice: int = DEFAULT_NICE,
    client_key: Callable[[web.Request], Key] | None = client_remote,
    settings: PoolSettings | None = None,
) -> None:
    """Give ``app`` loopsafe's pool for its life, the 503 middleware and a `PasswordHash`.

    Args:
        app: The application, before it starts.
        password_hash: The app's hasher; default `PasswordHash.recommended()`
            (Argon2id at Django's defaults). One built with its own ``pool=``
            keeps using that pool.
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.
        client_key: ``request -> key`` for `get_password_hash`: the client
            each request hashes for, so a flood from one client cannot take
            the whole pool. Default `client_remote`; None disables keys.
        settings: Every pool setting as one `loopsafe.PoolSettings`, in place
            of the separate keywords: ``host_limit``, ``host_key``,
            ``max_memory`` and ``monitor_lag`` (the running `LoopLagMonitor`
            is kept under ``app[LAG_KEY]``) come this way. Used as given;
            build it with `PoolSettings.from_env` to honour
            ``LOOPSAFE_HOST_LIMIT`` (without ``settings`` it is honoured).

    Raises:
        TypeError: If ``app`` is not an aiohttp Application, ``password_hash``
            not a loopsafe `PasswordHash`, ``client_key`` neither a callable
            nor None, a pool setting has the wrong type, or ``settings`` and
            a separate keyword are both given.
        ValueError: If a pool setting is out of range (every problem is listed).
        RuntimeError: If ``app`` has already started (its middleware is frozen)
            or `setup` was already called on it.
    """
    if not isinstance(app, web.Application):
        raise TypeError(f"setup() takes an aiohttp Application, not {type(app).__name__}")
    options = AppOptions.build(
        "setup",
        settings=settings,
        keywords={
            "max_workers": max_workers,
            "max_queue_wait": max_queue_wait,
            "max_pending": max_pending,
            "nice": nice,
        },
        executor=executor,
        password_hash=password_hash,
        client_key=client_key,
    )
    if app.frozen:
        raise RuntimeError("loopsafe.aiohttp.setup() must be called before the app starts")
    if overload_middleware in app.middlewares:
        raise RuntimeError("loopsafe.aiohttp.setup() was already called on this app")

    async def loopsafe_pool(app: web.Application) -> AsyncIterator[None]:
        async with options.running() as running:
            app[POOL_KEY] = running.pool
            if running.lag is not None:
                app[LAG_KEY] = running.lag
            yield

    app[PASSWORD_HASH_KEY] = options.password_hash
    app[CLIENT_KEY_KEY] = options.client_key
    app.cleanup_ctx.insert(0, loopsafe_pool)
    app.middlewares.insert(0, overload_middleware)
