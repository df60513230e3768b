"""What one call costs and what it must hold to run: service time, host slots, memory.

`HashPool` decides *whether* a call is admitted and *when* a worker takes it;
`Budget` answers the questions those decisions ask:

- How long does a call keep a worker busy? A smoothed measurement, and
  before the first answer (a cold pool) a prior: the estimate another process
  with the host key published, else the callers' declared ``cost``.
- How long would a call arriving now wait? From this process's queue and
  workers and, with a host budget, the slots the host's other processes hold
  and the calls they have waiting.
- May a call start? A worker takes a host slot (`loopsafe._host`) and the
  call's declared memory before running it, and gives both back after.

Thread-safety: its own lock, never held while waiting, and never the pool's;
the pool may call in while holding its own lock (the order is always pool,
then budget).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final

from loopsafe import _limits

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe._host import HostSlots

__all__ = ["LOCAL", "Budget"]

#: Weight of the newest sample in the service-time estimate (an exponentially
#: weighted moving average): recent enough to follow a change of algorithm or
#: machine load within a few calls, smooth enough to ignore one outlier.
_EWMA_WEIGHT: Final = 0.2

#: How long a reading of the host's slots serves admission, in seconds: a
#: burst of calls arriving together reads the host once, not once per call.
_HOST_READ_TTL: Final = 0.002

#: How often a call waiting for memory checks whether its caller is still there.
_MEMORY_CHECK: Final = 0.05

#: `Budget.take`'s answer when this process's memory was taken (no host slot).
LOCAL: Final = -1


class Budget:
    """The cost model and the budget of one pool.

    Args:
        host: The host's slots, or None without a host budget.
        max_memory: Most bytes the running calls may declare together; None:
            half the container's memory limit where a cgroup sets one, else
            no bound.
    """

    def __init__(self, host: HostSlots | None, max_memory: int | None) -> None:
        """Start cold, with the host's published service time as the prior."""
        self.host = host
        self.max_memory = max_memory
        self.ewma: float | None = None
        self._dev = 0.0  # smoothed |sample - mean|, like TCP's RTTVAR
        # A recycled worker starts from what its siblings measured.
        self._host_prior = None if host is None else host.service_time()
        self._cost_prior: float | None = None
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Forget the calls in flight (in a forked child they are the parent's)."""
        self._lock = threading.Condition(threading.Lock())
        self.memory_in_use = 0  # bytes declared by calls running in this process
        self._waiting = 0  # calls taken by a worker, waiting for a host slot
        self._queued = 0
        self._read: tuple[float, int, int] = (-1.0, 0, 0)  # (when, held, waiting) by others

    # -- service time ---------------------------------------------------------------------

    def record(self, elapsed: float) -> None:
        """Fold one service time into the estimate and share it with the host."""
        with self._lock:
            ewma = self.ewma
            if ewma is None:
                self.ewma = elapsed
            else:
                self._dev += _EWMA_WEIGHT * (abs(elapsed - ewma) - self._dev)
                self.ewma = ewma + _EWMA_WEIGHT * (elapsed - ewma)
            published = self.ewma
        if self.host is not None:
            self.host.publish_service_time(published)

    def service(self, cost: float | None = None) -> float | None:
        """Seconds one call keeps a worker busy, as far as admission knows.

        The measured average once a call has finished. Before that: the
        estimate another process with the host key published, else this
        caller's ``cost``, else the latest ``cost`` declared. None: nothing
        known, and the wait-based check waits for the first answer.
        """
        if self.ewma is not None:
            return self.ewma
        if self._host_prior is not None:
            return self._host_prior
        if cost is not None:
            self._cost_prior = cost
        return self._cost_prior

    def worst_service(self) -> float | None:
        """Seconds a call should be given to finish: the mean plus twice its deviation.

        TCP's retransmission rule: a hash slowed by a busy machine is not
        started for a caller who will be gone. Cold: the prior, as `service`.
        """
        if self.ewma is not None:
            return self.ewma + 2 * self._dev
        return self._host_prior if self._host_prior is not None else self._cost_prior

    # -- the wait a call would have ----------------------------------------------------------

    def memory_budget(self) -> int | None:
        """``max_memory``, else half the container's memory limit, else None."""
        if self.max_memory is not None:
            return self.max_memory
        return _limits.hashing_memory_budget()

    def parallelism(self, workers: int, memory: int) -> int:
        """Calls of ``memory`` bytes that may run at once in a pool of ``workers``."""
        parallel = workers if self.host is None else min(workers, self.host.limit)
        budget = self.memory_budget()
        if budget is not None and memory > 0:
            parallel = min(parallel, max(1, budget // memory))
        return parallel

    def _others(self) -> tuple[int, int]:
        """(slots held, calls waiting) by the host's other processes, re-read every 2 ms."""
        if self.host is None:
            return 0, 0
        now = time.monotonic()
        when, held, waiting = self._read
        if now - when > _HOST_READ_TTL:
            usage = self.host.usage()
            held = max(0, usage.held - usage.held_here)
            waiting = self.host.others_demand()
            self._read = (now, held, waiting)
        return held, waiting

    def estimate_wait(
        self, workers: int, running: int, queued_ahead: int, memory: int, cost: float | None
    ) -> float:
        """Seconds a call with ``queued_ahead`` calls before it would wait to start."""
        service = self.service(cost)
        if service is None:
            return 0.0
        local_workers = self.parallelism(workers, memory) if self.host is None else workers
        local = (
            0.0
            if running + queued_ahead < local_workers
            else service * (queued_ahead + 1) / local_workers
        )
        if self.host is None:
            return local
        # The host's slots drain every process's demand: the hashes the others
        # run and the calls they have waiting are ahead of this one too.
        host = self.host.limit
        budget = self.memory_budget()
        if budget is not None and memory > 0:
            host = min(host, max(1, budget // memory))
        held, waiting = self._others()
        ahead = held + waiting + running + queued_ahead
        shared = 0.0 if ahead < host else service * (ahead - host + 1) / host
        return max(local, shared)

    def set_queued(self, queued: int) -> None:
        """Tell the host's other processes how many calls wait here (queued or for a slot)."""
        if self.host is not None:
            with self._lock:
                self._queued = queued
                self.host.publish_demand(queued + self._waiting)

    # -- what a running call holds --------------------------------------------------------

    def needed(self, memory: int) -> bool:
        """Whether a call of ``memory`` bytes must take anything before it runs."""
        return self.host is not None or (memory > 0 and self.memory_budget() is not None)

    def take(self, memory: int, give_up: Callable[[], bool]) -> int | None:
        """Wait (on a worker thread) for a host slot and ``memory``; None if ``give_up()``.

        Returns:
            The host slot, `LOCAL` (this process's memory only), or None.
        """
        if self.host is not None:
            self._count_waiting(+1)
            try:
                slot = self.host.acquire(memory, max_memory=self.memory_budget(), give_up=give_up)
            finally:
                self._count_waiting(-1)
            if slot is not None:
                with self._lock:
                    self.memory_in_use += memory
            return slot
        with self._lock:
            while self.memory_in_use > 0:
                limit = self.memory_budget()  # the container's limit may change meanwhile
                if limit is None or self.memory_in_use + memory <= limit or give_up():
                    break
                self._lock.wait(_MEMORY_CHECK)
            if give_up():
                return None
            self.memory_in_use += memory
            return LOCAL

    def _count_waiting(self, change: int) -> None:
        with self._lock:
            self._waiting += change
            if self.host is not None:
                self.host.publish_demand(self._queued + self._waiting)

    def give_back(self, memory: int, slot: int) -> None:
        """Free what `take` returned."""
        if self.host is not None and slot != LOCAL:
            self.host.release(slot)
        with self._lock:
            self.memory_in_use -= memory
            self._lock.notify_all()

    def held(self, running: int) -> tuple[int, int]:
        """(host slots held, memory in use), host-wide with a host budget."""
        if self.host is None:
            return running, self.memory_in_use
        usage = self.host.usage()
        return usage.held, usage.memory
