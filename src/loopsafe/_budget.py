"""What a call must hold to run, and how long the host makes it wait: host slots, memory.

Admission decides *whether* a call is admitted and the workers *when* one
runs; `Budget` answers the questions those decisions ask:

- How long would a call arriving now wait, given the service time
  (`loopsafe._service`)? From this process's queue and workers and, with a
  host budget, the slots the host's other processes hold and the calls they
  have waiting.
- May a call start? A worker takes a host slot (`loopsafe._host`) and the
  call's declared memory before running it, and gives both back after.

The budget builds its own host slots (`loopsafe._host.HostSlots`) from the
pool's ``host_limit`` and ``host_key``.

Thread-safety: its own lock, never held while waiting, and never the pool's;
the pool may call in while holding its own lock (the order is always pool,
then budget).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final

from loopsafe import _limits
from loopsafe._host import HostSlots
from loopsafe._runtime_dir import check_host_key

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LOCAL", "Budget"]

#: How long a reading of the host's slots serves admission, in seconds: a
#: burst of calls arriving together reads the host once, not once per call.
_HOST_READ_TTL: Final = 0.002

#: How often a call waiting for memory checks whether its caller is still there.
_MEMORY_CHECK: Final = 0.05

#: `Budget.take`'s answer when this process's memory was taken (no host slot).
LOCAL: Final = -1


class Budget:
    """The host slots and the memory budget of one pool.

    Args:
        host_limit: Calls that may run at once on the whole host (a checked
            positive int), or None without a host budget.
        host_key: Names the host budget to share; None: the default key.
        max_memory: Most bytes the running calls may declare together; None:
            half the container's memory limit where a cgroup sets one, else
            no bound.

    Raises:
        TypeError: ``host_key`` is not a str.
        ValueError: ``host_key`` is not a usable name.
        loopsafe.exceptions.HostBudgetUnavailable: The host budget's files
            cannot be made.
    """

    def __init__(
        self, host_limit: int | None, host_key: str | None, max_memory: int | None
    ) -> None:
        """Make the host's slots (if ``host_limit``) and start with nothing in use."""
        if host_key is not None:
            check_host_key(host_key)
        self.host = None if host_limit is None else HostSlots(host_limit, host_key)
        self.max_memory = max_memory
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Forget the calls in flight (in a forked child they are the parent's)."""
        self._lock = threading.Condition(threading.Lock())
        self.memory_in_use = 0  # bytes declared by calls running in this process
        self._waiting = 0  # calls taken by a worker, waiting for a host slot
        self._queued = 0
        self._read: tuple[float, int, int] = (-1.0, 0, 0)  # (when, held, waiting) by others

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
        self, workers: int, running: int, queued_ahead: int, memory: int, service: float | None
    ) -> float:
        """Seconds a call with ``queued_ahead`` calls before it would wait to start.

        ``service`` is the service time (`loopsafe._service`); None: unknown, 0.0.
        """
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
