"""The process-wide default pool that the integrations share.

One pool per process is the point: it is what bounds memory (Argon2 needs
~100 MiB per hash in flight) and what admission control measures. Everything
that is not given a pool explicitly uses `default_pool()`; `configure()`
replaces it, for example from Django settings or a Starlette lifespan.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from loopsafe._pool import DEFAULT_NICE, HashPool

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
    max_queue_wait: float | None = 1.0,
    max_pending: int = 1024,
    executor: Executor | None = None,
    nice: int = DEFAULT_NICE,
) -> HashPool:
    """Replace the default pool with one built from these settings and return it.

    The previous default pool is closed: calls it already admitted still run
    and are answered, and new calls go to the new pool.

    Args:
        max_workers: See `HashPool`.
        max_queue_wait: See `HashPool`.
        max_pending: See `HashPool`.
        executor: See `HashPool`.
        nice: See `HashPool`.

    Returns:
        The new default pool.
    """
    global _pool
    new = HashPool(
        max_workers,
        max_queue_wait=max_queue_wait,
        max_pending=max_pending,
        executor=executor,
        nice=nice,
        name="loopsafe-default",
    )
    with _lock:
        old, _pool = _pool, new
    if old is not None:
        old.close(cancel_queued=False)
    return new
