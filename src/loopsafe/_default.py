"""The process-wide default pool that the integrations share.

One pool per process is the point: it is what bounds memory (Argon2 needs
~100 MiB per hash in flight) and what admission control measures. Everything
that is not given a pool explicitly uses `default_pool()`; `configure()`
sets its bounds in place, for example from Django settings or a Starlette lifespan.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from loopsafe._pool import HashPool
from loopsafe._runtime_dir import default_host_key
from loopsafe._settings import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_QUEUE_WAIT,
    DEFAULT_NICE,
    PoolSettings,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["configure", "default_pool"]

_lock = threading.Lock()
_pool: HashPool | None = None


def default_pool() -> HashPool:
    """Return the process-wide pool, creating it with default settings on first use.

    If the current default pool was closed (by ``close()`` or at shutdown of a
    test's lifespan), a fresh one with default settings takes its place.

    The environment variable ``LOOPSAFE_HOST_LIMIT`` (an int, or ``auto`` for
    the usable CPUs) is read here: set, it gives the default pool a host-wide
    budget, so ``uvicorn --workers 4`` shares one without a code change.

    Raises:
        ValueError: ``LOOPSAFE_HOST_LIMIT`` is neither a positive int nor ``auto``.
        loopsafe.exceptions.HostBudgetUnavailable: The host budget's files
            cannot be made.
    """
    global _pool  # noqa: PLW0603 - the one process-wide pool
    pool = _pool
    if pool is not None and not pool.closed:
        return pool
    with _lock:
        if _pool is None or _pool.closed:
            _pool = HashPool(name="loopsafe-default", settings=PoolSettings.from_env())
        return _pool


def configure(
    max_workers: int | None = None,
    *,
    max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
    max_pending: int = DEFAULT_MAX_PENDING,
    executor: Executor | None = None,
    nice: int = DEFAULT_NICE,
    host_limit: int | str | None = None,
    host_key: str | None = None,
    max_memory: int | None = None,
    settings: PoolSettings | None = None,
) -> HashPool:
    """Set the default pool's bounds and return it.

    Bounds that can change on a live pool (``max_workers``, ``max_queue_wait``,
    ``max_pending``) are set on the current default pool in place, like anyio's
    writable ``total_tokens``: calls already admitted stay where they are, the
    counters go on, and every integration keeps the same pool. Settings fixed at
    a pool's birth (``executor``, ``nice``, ``host_limit``, ``host_key``,
    ``max_memory``) replace it with a new pool when they differ; the old one is
    closed after its admitted calls are answered.

    The settings are checked before anything changes, without building a pool.

    Args:
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.
        host_limit: See `HashPool`. None: ``LOOPSAFE_HOST_LIMIT`` if set,
            else no host budget.
        host_key: See `HashPool`.
        max_memory: See `HashPool`.
        settings: Every setting as one `PoolSettings`, in place of the
            separate keywords; used as given (build it with
            `PoolSettings.from_env` to honour ``LOOPSAFE_HOST_LIMIT``).

    Returns:
        The default pool, now with these settings.

    Raises:
        TypeError: If a setting has the wrong type, or both ``settings`` and
            a separate keyword are given (every problem is listed).
        ValueError: If a bound is out of range (every problem is listed).
    """
    # Check everything before changing anything; no pool is built for it.
    settings = PoolSettings.merge(
        settings,
        from_env=True,
        max_workers=max_workers,
        max_queue_wait=max_queue_wait,
        max_pending=max_pending,
        nice=nice,
        host_limit=host_limit,
        host_key=host_key,
        max_memory=max_memory,
    )
    return _apply(settings, executor)


def _apply(settings: PoolSettings, executor: Executor | None) -> HashPool:
    global _pool  # noqa: PLW0603 - the one process-wide pool
    born = (settings.nice, settings.host_limit, _host_key(settings), settings.max_memory)
    with _lock:
        current = _pool
        if (
            current is not None
            and not current.closed
            and executor is None
            and current.uses_executor is False
            and (current.nice, current.host_limit, current.host_key, current.max_memory) == born
        ):
            current.max_workers = settings.max_workers
            current.max_queue_wait = settings.max_queue_wait
            current.max_pending = settings.max_pending
            return current
        old = current
        _pool = HashPool(name="loopsafe-default", executor=executor, settings=settings)
        new = _pool
    if old is not None:
        old.close(cancel_queued=False)
    return new


def _host_key(settings: PoolSettings) -> str | None:
    """The host key a pool with these settings reports (its default when a limit is set)."""
    if settings.host_limit is None:
        return None
    return settings.host_key or default_host_key()
