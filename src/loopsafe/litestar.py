"""Litestar: one plugin that owns the pool, answers overload with 503 and provides a hasher.

::

    from litestar import Litestar, post
    from litestar.di import NamedDependency
    from litestar.params import JSONBody
    from loopsafe import PasswordHash
    from loopsafe.litestar import LoopsafePlugin

    @post("/login")
    async def login(
        data: JSONBody[Form], password_hash: NamedDependency[PasswordHash]
    ) -> dict[str, bool]:
        ok, new_hash = await password_hash.averify_and_update(data.password, stored)
        ...

    app = Litestar([login], plugins=[LoopsafePlugin()])

`LoopsafePlugin` (Litestar's ``InitPluginProtocol``) adds to the app:

- a lifespan, entered before the app's own, that configures loopsafe's default
  pool at startup, keeps the `PasswordHash` on ``app.state.password_hash``, the
  pool on ``app.state.loopsafe_pool``, ``client_key`` on
  ``app.state.loopsafe_client_key`` and, with ``PoolSettings(monitor_lag=True)``,
  a running `LoopLagMonitor` on ``app.state.loopsafe_lag``, and closes the
  pool at shutdown (waiting for the hashes already running);
- exception handlers: `Overloaded` becomes 503 with ``Retry-After`` and
  ``{"detail", "retry_after"}``, `PoolClosed` (a request caught by shutdown)
  a bare 503; handlers the app already has for them are kept;
- a dependency, ``password_hash`` by default, giving handlers the app's
  `PasswordHash` bound to the requesting client's key
  (`PasswordHash.for_client`), so that under a flood each client gets a fair
  share of the pool. The key comes from ``client_key``, by default
  `client_host` (``request.client.host``, the peer address). Behind a reverse
  proxy that is the proxy's address: ``X-Forwarded-For`` is not read, since
  any client can send it; see docs/fairness.md for reading it safely.

Settings are checked when the plugin is made, so a bad one fails the app's
start rather than its first login. For advanced-alchemy's ``PasswordHash``
column type see `loopsafe.advanced_alchemy`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

try:
    from litestar import Litestar, MediaType, Request, Response
    from litestar.connection import ASGIConnection  # noqa: TC002 - read at runtime by Litestar
    from litestar.datastructures import State  # noqa: TC002 - Litestar reads annotations at runtime
    from litestar.di import Provide
    from litestar.plugins import InitPlugin
except ImportError as exc:  # pragma: no cover - exercised by a test that hides litestar
    raise ImportError("loopsafe.litestar needs Litestar: pip install 'loopsafe[litestar]'") from exc

from loopsafe._api import PasswordHash
from loopsafe._settings import DEFAULT_MAX_PENDING, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_NICE
from loopsafe._web import AppOptions, client_password_hash, login_password_hash, refusal
from loopsafe.exceptions import Overloaded, PoolClosed, Throttled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from concurrent.futures import Executor

    from litestar.config.app import AppConfig

    from loopsafe._fair import Key
    from loopsafe._settings import PoolSettings
    from loopsafe.devices import DeviceCookies

__all__ = [
    "LoopsafePlugin",
    "client_host",
    "overloaded_handler",
    "pool_closed_handler",
    "provide_login_password_hash",
    "provide_password_hash",
    "throttled_handler",
]

# The app.state keys the module docstring promises.
_STATE_PASSWORD_HASH: Final = "password_hash"  # noqa: S105 - a key name
_STATE_POOL: Final = "loopsafe_pool"
_STATE_CLIENT_KEY: Final = "loopsafe_client_key"
_STATE_LAG: Final = "loopsafe_lag"


def client_host(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """Return the peer's address (``connection.client.host``), or None when unknown.

    The default client key. It is the address of whoever opened the TCP
    connection: behind a reverse proxy, the proxy. Headers such as
    ``X-Forwarded-For`` are not read: any client can send them, so trusting
    them by default would let a flood pick a fresh key per request.
    """
    client = connection.client
    return client.host if client is not None else None


def overloaded_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Answer `Overloaded` with 503, ``Retry-After`` and ``{"detail", "retry_after"}``."""
    if not isinstance(exc, Overloaded):
        raise exc
    return _refusal_response(exc)


def throttled_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Answer `Throttled` (`loopsafe.throttle`) with 429, ``Retry-After`` and a JSON body."""
    if not isinstance(exc, Throttled):
        raise exc
    return _refusal_response(exc)


def pool_closed_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Answer `PoolClosed` (a request caught by the server's shutdown) with a bare 503."""
    if not isinstance(exc, PoolClosed):
        raise exc
    return _refusal_response(exc)


def _refusal_response(exc: Overloaded | Throttled | PoolClosed) -> Response[Any]:
    answer = refusal(exc)
    assert answer is not None  # noqa: S101 - refusal() answers all three
    return Response(
        dict(answer.body),
        status_code=answer.status,
        headers=dict(answer.headers),
        media_type=MediaType.JSON,
    )


async def provide_password_hash(
    state: State, request: ASGIConnection[Any, Any, Any, Any]
) -> PasswordHash:
    """Return the app's `PasswordHash` for this client (the plugin registers this as a dependency).

    The returned hasher's async methods pass the client's key (the plugin's
    ``client_key(request)``, by default `client_host`) to the pool; with
    ``client_key=None`` it is the app's `PasswordHash` itself. ``request`` is
    the connection Litestar injects (a ``WebSocket`` in a websocket handler).
    Async so that Litestar calls it on the loop rather than on a thread.

    Raises:
        RuntimeError: If the app has none: add `LoopsafePlugin`, or set
            ``app.state.password_hash`` yourself.
        TypeError: If ``app.state.password_hash`` is something else, or
            ``client_key`` returned a bad key (the message names its type,
            never its value).
    """
    return client_password_hash(
        state.get(_STATE_PASSWORD_HASH),
        state.get(_STATE_CLIENT_KEY, client_host),
        request,
        where="LoopsafePlugin(client_key=...)",
        missing="add plugins=[loopsafe.litestar.LoopsafePlugin()] to the app "
        "(it sets app.state.password_hash)",
    )


async def provide_login_password_hash(
    state: State, request: ASGIConnection[Any, Any, Any, Any], username: str, devices: DeviceCookies
) -> PasswordHash:
    """`provide_password_hash` for a login: a trusted device goes first (`loopsafe.devices`).

    A valid device cookie for ``username`` makes the hasher pass the device's
    own key and a higher priority; after a successful login, call
    ``devices.set_cookie(response, username)``.
    """
    password_hash = await provide_password_hash(state, request)
    return login_password_hash(password_hash, devices, request.cookies, username)


def _check_dependency_key(key: object) -> None:
    if key is not None and not (isinstance(key, str) and key.isidentifier()):
        raise ValueError("LoopsafePlugin(dependency_key=...) must be an identifier or None")


class LoopsafePlugin(InitPlugin):
    """Own loopsafe's pool for the app's life; map overload to 503; provide a `PasswordHash`.

    Args:
        password_hash: The app's hasher; default `PasswordHash.recommended()`
            (Argon2id at Django's defaults). One built with its own ``pool=``
            keeps using that pool.
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.
        dependency_key: The name under which handlers receive the
            `PasswordHash`; None registers no dependency.
        client_key: ``connection -> key`` for the dependency: the client each
            request hashes for, so a flood from one client cannot take the
            whole pool. Default `client_host`; None disables keys.
        settings: Every pool setting as one `loopsafe.PoolSettings`, in place
            of the separate keywords: ``host_limit``, ``host_key``,
            ``max_memory`` and ``monitor_lag`` (the running `LoopLagMonitor`
            is kept on ``app.state.loopsafe_lag``) come this way. Used as
            given; build it with `PoolSettings.from_env` to honour
            ``LOOPSAFE_HOST_LIMIT`` (without ``settings`` it is honoured).

    Raises:
        TypeError: If ``password_hash`` is not a loopsafe `PasswordHash`,
            ``client_key`` is neither a callable nor None, a pool setting
            has the wrong type, or ``settings`` and a separate keyword are
            both given.
        ValueError: If a pool setting is out of range (every problem is
            listed), or ``dependency_key`` is not an identifier.
    """

    __slots__ = ("_dependency_key", "_options")

    def __init__(
        self,
        *,
        password_hash: PasswordHash | None = None,
        max_workers: int | None = None,
        max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        executor: Executor | None = None,
        nice: int = DEFAULT_NICE,
        dependency_key: str | None = "password_hash",
        client_key: Callable[[ASGIConnection[Any, Any, Any, Any]], Key] | None = client_host,
        settings: PoolSettings | None = None,
    ) -> None:
        """Check every setting now, so that a bad one fails at app start-up."""
        _check_dependency_key(dependency_key)
        self._options = AppOptions.build(
            "LoopsafePlugin",
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
        self._dependency_key = dependency_key

    @property
    def password_hash(self) -> PasswordHash:
        """The `PasswordHash` the app's handlers receive."""
        return self._options.password_hash

    @property
    def settings(self) -> PoolSettings:
        """The pool's settings, checked (what the app's start-up configures)."""
        return self._options.settings

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Add the lifespan (first), the exception handlers and the dependency."""
        app_config.lifespan.insert(0, self._lifespan)
        app_config.exception_handlers.setdefault(Overloaded, overloaded_handler)
        app_config.exception_handlers.setdefault(PoolClosed, pool_closed_handler)
        app_config.exception_handlers.setdefault(Throttled, throttled_handler)
        if self._dependency_key is not None:
            app_config.dependencies.setdefault(self._dependency_key, Provide(provide_password_hash))
        # Handlers written with `from __future__ import annotations` name the type.
        app_config.signature_namespace.setdefault("PasswordHash", PasswordHash)
        return app_config

    @asynccontextmanager
    async def _lifespan(self, app: Litestar) -> AsyncIterator[None]:
        async with self._options.running() as running:
            app.state[_STATE_POOL] = running.pool
            app.state[_STATE_PASSWORD_HASH] = self._options.password_hash
            app.state[_STATE_CLIENT_KEY] = self._options.client_key
            if running.lag is not None:
                app.state[_STATE_LAG] = running.lag
            yield
