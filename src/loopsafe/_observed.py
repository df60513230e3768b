"""Following a pool for an exporter: the pool now, a listener on it, counters that never drop.

The metrics exporters (`loopsafe.prometheus`, `loopsafe.opentelemetry`) watch
either a pool they were given or loopsafe's default pool, which
`loopsafe.configure` (or a Starlette lifespan, or Django's ``ready()``) may
replace at any time. `ObservedPool` looks the pool up at each read, moves its
listener to the new pool, and carries the old pool's counters over so that the
exported counters never go down. It uses only `HashPool.statistics` and
`HashPool.add_listener`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from loopsafe._default import default_pool
from loopsafe._statistics import REFUSAL_REASONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe._pool import HashPool
    from loopsafe._statistics import PoolStatistics

__all__ = ["COUNTERS", "ObservedPool"]

#: `PoolStatistics` fields that only ever grow.
COUNTERS: Final = (
    "admitted",
    "completed",
    "failed",
    "rejected",
    "cancelled",
    "expired",
    "abandoned",
    "shed",
)


class ObservedPool:
    """One exported pool: fixed, or None for the default pool (looked up at each read).

    Args:
        fixed: The pool, or None for loopsafe's default pool.
        listener: Called as ``listener(event, seconds)`` for every call that
            ends in the pool followed now (see `HashPool.add_listener`).
    """

    def __init__(self, fixed: HashPool | None, listener: Callable[[str, float], None]) -> None:
        """Attach the listener to the pool now."""
        self._fixed = fixed
        self._listener = listener
        self._lock = threading.Lock()
        self._attached: HashPool | None = None
        self._detach: Callable[[], None] | None = None
        #: Counters of pools followed before (the default pool was replaced).
        self._carried: dict[str, int] = {}
        self.pool()

    def pool(self) -> HashPool:
        """Return the pool now, moving the listener if the default pool changed."""
        pool = self._fixed if self._fixed is not None else default_pool()
        with self._lock:
            if pool is self._attached:
                return pool
            if self._attached is not None:
                old = self._attached.statistics()
                for key, count in _counts(old).items():
                    self._carried[key] = self._carried.get(key, 0) + count
            if self._detach is not None:
                self._detach()
            self._detach = pool.add_listener(self._listener)
            self._attached = pool
        return pool

    def read(self) -> tuple[PoolStatistics, dict[str, int]]:
        """Return the pool's statistics now and its counters, carried ones included.

        The counters' keys are `COUNTERS` and ``refused:<reason>`` for each
        refusal reason.
        """
        stats = self.pool().statistics()
        counts = _counts(stats)
        with self._lock:
            return stats, {key: count + self._carried.get(key, 0) for key, count in counts.items()}

    def close(self) -> None:
        """Remove the listener."""
        with self._lock:
            if self._detach is not None:
                self._detach()
            self._attached = self._detach = None


def _counts(stats: PoolStatistics) -> dict[str, int]:
    counts = {key: int(getattr(stats, key)) for key in COUNTERS}
    for reason in REFUSAL_REASONS:
        counts[f"refused:{reason}"] = stats.refusals.get(reason, 0)
    return counts
