"""Measuring event-loop lag: how late the loop wakes a task that asked to sleep.

A ticker task sleeps ``interval`` seconds in a loop and records, at each wake-up,
``actual_sleep - interval``. On a free loop that is well under a millisecond; a
call that blocks the loop for 300 ms shows up as one 300 ms sample. That is
the measure loopsafe's tests, benchmarks and production metrics all share.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

from loopsafe._waiting import current_library, sleep

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["LagSnapshot", "LoopLagMonitor", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) of ``values`` by nearest rank; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class LagSnapshot:
    """Loop lag over a set of samples, in seconds.

    Attributes:
        samples: How many wake-ups were measured.
        p50: Median lag.
        p99: 99th percentile lag.
        max: Worst lag: a blocked loop shows here first.
        mean: Mean lag.
    """

    samples: int
    p50: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, lags: Sequence[float]) -> LagSnapshot:
        """Summarise a sequence of lag samples."""
        if not lags:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            samples=len(lags),
            p50=percentile(lags, 50),
            p99=percentile(lags, 99),
            max=max(lags),
            mean=sum(lags) / len(lags),
        )

    def as_ms(self) -> dict[str, float]:
        """Return p50/p99/max/mean in milliseconds, rounded to 0.01 ms (for reports)."""
        return {
            "p50_ms": round(self.p50 * 1000, 2),
            "p99_ms": round(self.p99 * 1000, 2),
            "max_ms": round(self.max * 1000, 2),
            "mean_ms": round(self.mean * 1000, 2),
        }


class LoopLagMonitor:
    """Measure the running event loop's lag continuously (asyncio, uvloop or trio).

    Use it as an async context manager around the code to watch::

        async with LoopLagMonitor() as lag:
            await do_logins()
        print(lag.snapshot().max)

    or, in a long-running server, start it once (``await monitor.start()``) and
    read `recent` from a metrics endpoint.

    Args:
        interval: Seconds the ticker sleeps between samples (5 ms by default).
        window: Samples kept for `recent` (the whole run is kept in `snapshot`
            only while ``keep_all`` is true).
        keep_all: Keep every sample with its timestamp (tests and benchmarks).
            Off for production use, where only the window and the running
            maximum are kept, so memory stays bounded.
    """

    def __init__(
        self,
        interval: float = 0.005,
        *,
        window: int = 2000,
        keep_all: bool = True,
    ) -> None:
        """Configure the ticker; nothing runs until the monitor is entered or started."""
        if not interval > 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.keep_all = keep_all
        self._recent: deque[float] = deque(maxlen=window)
        self._all: list[tuple[float, float]] = []
        self._max = 0.0
        self._count = 0
        self._started_at: float | None = None
        self._tick_since: float | None = None  # when the pending sleep began
        self._stop: Any = None
        self._exit: Any = None

    # -- reading ----------------------------------------------------------------

    @property
    def max_lag(self) -> float:
        """Worst lag seen since the monitor started, in seconds."""
        return self._max

    @property
    def count(self) -> int:
        """Samples taken since the monitor started."""
        return self._count

    def samples(self) -> list[tuple[float, float]]:
        """Return ``(seconds since start, lag)`` for every sample (needs ``keep_all``)."""
        return list(self._all)

    def snapshot(self) -> LagSnapshot:
        """Summarise every sample since the start (or the recent window without ``keep_all``)."""
        if self.keep_all:
            return LagSnapshot.of([lag for _, lag in self._all])
        return self.recent()

    def recent(self) -> LagSnapshot:
        """Summarise the last ``window`` samples."""
        return LagSnapshot.of(list(self._recent))

    def reset(self) -> None:
        """Forget every sample so far."""
        self._recent.clear()
        self._all.clear()
        self._max = 0.0
        self._count = 0

    def _record(self, now: float, lag: float) -> None:
        lag = max(lag, 0.0)
        self._recent.append(lag)
        self._count += 1
        self._max = max(self._max, lag)
        if self.keep_all:
            start = self._started_at if self._started_at is not None else now
            self._all.append((now - start, lag))

    # -- running ----------------------------------------------------------------

    async def run(self) -> None:
        """Tick forever on the current loop; cancel the task to stop."""
        clock = time.perf_counter
        interval = self.interval
        self._started_at = clock()
        while True:
            before = self._tick_since = clock()
            await sleep(interval)
            after = clock()
            self._tick_since = None
            self._record(after, after - before - interval)

    async def start(self) -> None:
        """Start ticking in the background until `stop` (or the context manager exits)."""
        if self._stop is not None:
            raise RuntimeError("this LoopLagMonitor is already running")
        self._started_at = None
        if current_library() == "trio":
            import trio

            nursery_manager = trio.open_nursery()
            nursery = await nursery_manager.__aenter__()
            nursery.start_soon(self.run)
            self._stop = nursery.cancel_scope.cancel
            self._exit = nursery_manager
        else:
            task = asyncio.get_running_loop().create_task(self.run())
            self._stop = task.cancel
            self._exit = task
        # Let the ticker take its first timestamp before the watched code runs
        # (trio may run other tasks first: yield until it has).
        for _ in range(100):
            await sleep(0)
            if self._ticking():
                break

    def _ticking(self) -> bool:
        """Whether the ticker has taken its first timestamp (set by another task)."""
        return self._started_at is not None

    async def stop(self) -> None:
        """Stop ticking and wait for the ticker to end."""
        if self._stop is None:
            return
        stop, exit_, self._stop, self._exit = self._stop, self._exit, None, None
        # A stall that ends with the watched code is still in the pending tick:
        # the ticker would only record it on its next wake-up, which never comes.
        since = self._tick_since
        if since is not None:
            now = time.perf_counter()
            if now - since > self.interval:
                self._record(now, now - since - self.interval)
            self._tick_since = None
        stop()
        if isinstance(exit_, asyncio.Task):
            try:
                await exit_
            except asyncio.CancelledError:
                # Re-raise only if *we* are being cancelled, not just the ticker
                # (Task.cancelling() exists from 3.11; on 3.10 assume not).
                current = asyncio.current_task()
                cancelling = getattr(current, "cancelling", None)
                if cancelling is not None and cancelling():
                    raise
        else:
            await exit_.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        """Start ticking."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop ticking."""
        await self.stop()
