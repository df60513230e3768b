"""What every web integration does, in one place (sentry-python's ``_asgi_common.py`` is the model).

Starlette/FastAPI, Litestar and aiohttp are thin: each turns its framework's
hooks into calls of this module, and Django's middleware uses its answer.

- The options an app is built with: `AppOptions.build` checks the
  ``PasswordHash``, the ``client_key`` callable and the pool's settings (one
  `loopsafe.PoolSettings`, given whole or built from the legacy keywords) when
  the app is built, so a bad one fails before the server serves.
- The pool's life: `AppOptions.running` configures loopsafe's default pool
  with those settings at start-up, measures the preferred hasher's cost once
  (a scaled-down hash, before the first request), starts the `LoopLagMonitor`
  when ``monitor_lag`` is set, and at shutdown stops it and closes the pool,
  waiting for the hashes in flight.
- The client key: `client_password_hash` binds the app's `PasswordHash` to
  ``client_key(request)``; `key_of` checks what that callable returned.
  `login_password_hash` goes one step further for a login: a trusted
  device's cookie (`loopsafe.devices`) gives the device's own key and priority.
- The refusal: `refusal` says what to answer for `Overloaded` (503, a
  ``Retry-After`` in whole seconds, ``{"detail", "retry_after"}``), for
  `Throttled` (429, the same headers and body shape) and for `PoolClosed`
  (503); each framework renders it as its own JSON response.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from loopsafe._api import PasswordHash
from loopsafe._default import configure
from loopsafe._fair import check_key
from loopsafe._http import (
    OVERLOADED_DETAIL,
    SHUTTING_DOWN_DETAIL,
    THROTTLED_DETAIL,
    retry_after_seconds,
)
from loopsafe._lag import LoopLagMonitor
from loopsafe._settings import PoolSettings
from loopsafe.exceptions import Overloaded, PoolClosed, Throttled

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping
    from concurrent.futures import Executor

    from loopsafe._fair import Key
    from loopsafe._pool import HashPool
    from loopsafe.devices import DeviceCookies

__all__ = [
    "AppOptions",
    "Refusal",
    "Running",
    "check_client_key_option",
    "client_password_hash",
    "key_of",
    "login_password_hash",
    "refusal",
    "retry_after_seconds",
]

R = TypeVar("R")


# -- the refusal ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """What to answer a request whose hashing was refused: status, JSON body, headers."""

    status: int
    body: Mapping[str, object]
    headers: Mapping[str, str]


def refusal(exc: BaseException) -> Refusal | None:
    """The answer for `Overloaded`, `Throttled` or `PoolClosed`; None for any other exception.

    `Overloaded`: 503, ``Retry-After`` in whole seconds (rounded up, at least
    1) and ``{"detail", "retry_after"}``. `Throttled` (a login budget of
    `loopsafe.throttle` is spent): the same with 429. `PoolClosed` (a request
    caught by the server's shutdown): 503 and ``{"detail"}``, no ``Retry-After``.
    """
    if isinstance(exc, (Overloaded, Throttled)):
        seconds = retry_after_seconds(exc.retry_after)
        status, detail = (
            (503, OVERLOADED_DETAIL) if isinstance(exc, Overloaded) else (429, THROTTLED_DETAIL)
        )
        return Refusal(
            status,
            {"detail": detail, "retry_after": seconds},
            {"Retry-After": str(seconds)},
        )
    if isinstance(exc, PoolClosed):
        return Refusal(503, {"detail": SHUTTING_DOWN_DETAIL}, {})
    return None


# -- the client key --------------------------------------------------------------------


def check_client_key_option(client_key: object, where: str) -> None:
    """Raise `TypeError` unless ``client_key`` is a callable or None.

    ``where`` names the option in the message, e.g. ``"LoopsafePlugin(client_key=...)"``.
    """
    if client_key is not None and not callable(client_key):
        raise TypeError(
            f"{where} takes a callable (request -> key) or None, not {type(client_key).__name__}"
        )


def key_of(client_key: Callable[[R], object], request: R, where: str) -> Key:
    """Return ``client_key(request)``, checked.

    Raises:
        TypeError: If it returned something that cannot be a key; the message
            names its type, never its value (keys are client addresses).
    """
    key = client_key(request)
    try:
        check_key(key)
    except TypeError as exc:
        raise TypeError(f"{where} returned a bad key: {exc}") from None
    return key  # type: ignore[return-value] # checked just above


def client_password_hash(
    password_hash: PasswordHash | None,
    client_key: Callable[[R], object] | None,
    request: R,
    *,
    where: str,
    missing: str,
) -> PasswordHash:
    """The app's `PasswordHash` bound to the request's client (unbound without keys).

    Args:
        password_hash: What the app keeps (its state, its app key); checked,
            since an app's state can hold anything.
        client_key: ``request -> key``, or None for no keys.
        request: The framework's request.
        where: Names the ``client_key`` option in an error.
        missing: How to fix an app that has no `PasswordHash` (the error's end).

    Raises:
        RuntimeError: The app has no `PasswordHash`.
        TypeError: It is something else, or ``client_key`` returned a bad key.
    """
    if password_hash is None:
        raise RuntimeError(f"this app has no loopsafe PasswordHash: {missing}")
    if not isinstance(password_hash, PasswordHash):
        raise TypeError(
            f"the app's password_hash is a {type(password_hash).__name__}, "
            "not a loopsafe PasswordHash"
        )
    if client_key is None:
        return password_hash
    key = key_of(client_key, request, where)
    return password_hash if key is None else password_hash.for_client(key)


def login_password_hash(
    password_hash: PasswordHash,
    devices: DeviceCookies,
    cookies: Mapping[str, Any] | None,
    username: str,
) -> PasswordHash:
    """The client-bound `PasswordHash` for a login: a trusted device goes first.

    ``password_hash`` is what `client_password_hash` returned for the
    request. A valid cookie of ``devices`` for ``username`` among ``cookies``
    makes a copy that passes the device's own key and priority to the pool
    (`loopsafe.devices.DeviceCookies.bind`); anything else leaves it as it is.
    """
    return devices.bind(password_hash, devices.read(cookies), username)[0]


# -- the app's options and the pool's life ------------------------------------------------


@dataclass(frozen=True)
class Running:
    """What an app holds while it runs: the pool and, with ``monitor_lag``, the lag monitor."""

    pool: HashPool
    lag: LoopLagMonitor | None


@dataclass(frozen=True)
class AppOptions:
    """An app's loopsafe options, checked when the app is built.

    Attributes:
        settings: The pool's settings (and ``monitor_lag``).
        executor: The pool's executor, or None for its own threads.
        password_hash: The app's `PasswordHash`.
        client_key: ``request -> key``, or None for no keys.
    """

    settings: PoolSettings
    executor: Executor | None
    password_hash: PasswordHash
    client_key: Callable[..., Key] | None

    @classmethod
    def build(
        cls,
        where: str,
        *,
        settings: PoolSettings | None,
        keywords: dict[str, Any],
        executor: Executor | None,
        password_hash: PasswordHash | None,
        client_key: Callable[..., Key] | None,
    ) -> AppOptions:
        """Check every option now; the pool itself is configured at start-up.

        ``keywords`` are the integration's separate pool keywords; without
        ``settings`` they make one `PoolSettings` (``host_limit`` None reads
        ``LOOPSAFE_HOST_LIMIT``); beside ``settings`` they must be left alone.

        Raises:
            TypeError: ``password_hash`` is not a `PasswordHash`,
                ``client_key`` is neither a callable nor None, a setting has
                the wrong type, or both ``settings`` and a keyword were given.
            ValueError: A setting is out of range (every problem is listed).
        """
        if password_hash is not None and not isinstance(password_hash, PasswordHash):
            raise TypeError(
                f"{where}(password_hash=...) takes a loopsafe PasswordHash, "
                f"not {type(password_hash).__name__}"
            )
        check_client_key_option(client_key, f"{where}(client_key=...)")
        return cls(
            settings=PoolSettings.merge(settings, from_env=True, **keywords),
            executor=executor,
            password_hash=password_hash
            if password_hash is not None
            else PasswordHash.recommended(),
            client_key=client_key,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Running]:
        """Own the pool (and the lag monitor) for the app's life.

        At start-up: `loopsafe.configure` with the settings, one scaled-down
        hash to learn the preferred hasher's cost, the monitor started. At
        shutdown, even after an error: the monitor stopped, the pool closed
        after the hashes already running are answered.
        """
        pool = configure(executor=self.executor, settings=self.settings)
        try:
            # A cold pool admits by this estimate until its first answer.
            self.password_hash.estimate_cost()
            lag = LoopLagMonitor(keep_all=False) if self.settings.monitor_lag else None
            if lag is not None:
                await lag.start()
            try:
                yield Running(pool, lag)
            finally:
                if lag is not None:
                    await lag.stop()
        finally:
            await pool.aclose()
