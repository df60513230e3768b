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
from loopsafe._settings import DEFAULT_MAX_PENDING, DEFAULT_MAX_QUEUE_WAIT, DEFAULT_NICE

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = ["configure", "default_pool"]

_lock = threading.Lock()
_pool: HashPool | None = None


def default_pool() -> HashPool:
    """Return the process-wide pool, creating it with default settings on first use.

    If the current default pool was closed (by ``close()`` or at shutdown of a
    test's lifespan), a fresh one with default settings takes its place.
    """
    global _pool  # noqa: PLW0603 - the one process-wide pool
    pool = _pool
    if pool is not None and not pool.closed:
        return pool
    with _lock:
        if _pool is None or _pool.closed:
            _pool = HashPool(name="loopsafe-default")
        return _pool


def configure(
    max_workers: int | None = None,
    *,
    max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
    max_pending: int = DEFAULT_MAX_PENDING,
    executor: Executor | None = None,
    nice: int = DEFAULT_NICE,
) -> HashPool:
    """Set the default pool's bounds and return it.

    Bounds that can change on a live pool (``max_workers``, ``max_queue_wait``,
    ``max_pending``) are set on the current default pool in place, like anyio's
    writable ``total_tokens``: calls already admitted stay where they are, the
    counters go on, and every integration keeps the same pool. Settings fixed at
    a pool's birth (``executor``, ``nice``) replace it with a new pool when they
    differ; the old one is closed after its admitted calls are answered.

    Args:
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.

    Returns:
        The default pool, now with these settings.

    Raises:
        TypeError: If a setting has the wrong type.
        ValueError: If a bound is out of range.
    """
    global _pool
    # Validate everything before changing anything.
    candidate = HashPool(
        max_workers,
        max_queue_wait=max_queue_wait,
        max_pending=max_pending,
        executor=executor,
        nice=nice,
        name="loopsafe-default",
    )
    with _lock:
        current = _pool
        if (
            current is not None
            and not current.closed
            and executor is None
            and current.uses_executor is False
            and current.nice == nice
        ):
            candidate.close()
            current.max_workers = max_workers
            current.max_queue_wait = max_queue_wait
            current.max_pending = max_pending
            return current
        old, _pool = current, candidate
    if old is not None:
        old.close(cancel_queued=False)
    return candidate
