"""Admission with client keys: who may join the queue now, and who gives way.

`HashPool` inherits this. Without keys (one shared key) it is the pool's
first-come admission: a call is refused when the queue holds ``max_pending``
calls or its estimated wait exceeds ``max_queue_wait``. With keys, when a call
would be refused:

- the key holding most, above its fair share of the pool's slots (workers
  plus the queue ``max_queue_wait`` admits, divided among the active keys),
  gives up its newest queued call (answered with `Overloaded`,
  ``reason="fair-share"``), and a lower priority gives way to a higher one
  (``reason="priority"``), up to `_MAX_SHED_PER_ARRIVAL` calls per arrival;
- a key that would become the biggest holder above its share is refused
  (``reason="fair-share"``, ``retry_after`` from its own share);
- a key within its share whose call would start as soon as one running call
  ends is admitted even past ``max_queue_wait``: it waits at most one service
  time, and without this a flood keeping every worker busy would lock
  everyone else out.

Everything here runs under the pool's lock. Keys are never put in a message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from loopsafe._calls import _SHED
from loopsafe._fair import check_key, check_priority
from loopsafe.exceptions import Overloaded, PoolClosed

if TYPE_CHECKING:
    import threading
    from collections import Counter

    from loopsafe._budget import Budget
    from loopsafe._calls import _Call
    from loopsafe._fair import FairQueue, Key

__all__: list[str] = []

#: Most queued calls one arrival may push out before it is refused itself.
_MAX_SHED_PER_ARRIVAL: Final = 4


class _Admission:
    """The admission half of `HashPool`: its state is the pool's own."""

    _cond: threading.Condition
    _queue: FairQueue[_Call[Any]]
    _closed: bool
    _running: int
    _max_workers: int
    _max_queue_wait: float | None
    _max_pending: int
    _budget: Budget
    _rejected: int
    _shed: int
    _refusals: Counter[str]

    def check_admission(self, *, key: Key = None, priority: int = 0) -> None:
        """Raise `Overloaded` (or `PoolClosed`) if a call arriving now would be refused.

        Handy before doing other expensive work for a request that will need the
        pool anyway (a database query for the user, say). A dry run: it admits
        nothing, pushes nothing out, and counts nothing (``statistics().rejected``
        and the listeners see only real refusals). A call of ``key`` that would
        be admitted only by pushing out another key's queued call passes.
        """
        check_key(key)
        check_priority(priority)
        with self._cond:
            _, refused = self._admission(key, priority, shed=False)
        if refused is not None:
            raise refused

    def _estimate_wait(
        self, queued_ahead: int, memory: int = 0, cost: float | None = None
    ) -> float:
        """Seconds a call with ``queued_ahead`` calls before it would wait to start.

        `Budget.estimate_wait`: this pool's workers and, with a host budget, the
        host's other processes; a cold pool goes by ``cost``.
        """
        return self._budget.estimate_wait(
            self._max_workers, self._running, queued_ahead, memory, cost
        )

    def _fair_share(self, arriving: Key) -> tuple[float, int]:
        """Return (slots per key, keys) if a call of ``arriving`` joined now.

        The slots are the calls the pool holds within its bounds: the workers
        plus the queue that ``max_queue_wait`` (or ``max_pending``) admits.
        """
        keys = self._queue.active_keys + (self._queue.held(arriving) == 0)
        queue = self._max_pending
        service = self._budget.service()
        if self._max_queue_wait is not None and service:
            by_wait = math.floor(self._max_queue_wait * self._max_workers / service)
            queue = min(queue, max(by_wait, 1))
        return (self._max_workers + queue) / keys, keys

    def _share_retry_after(self, key: Key, share: float, keys: int) -> float:
        """Seconds until ``key`` is back within ``share``, served 1/``keys`` of the workers."""
        excess = max(self._queue.held(key) + 1 - share, 1.0)
        per_call = (self._budget.service() or 0.05) * keys / self._max_workers
        return round(excess * per_call, 3)

    def _refusal(
        self, key: Key, priority: int, memory: int = 0, cost: float | None = None
    ) -> Overloaded | None:
        """Return why a call of ``key`` and ``priority`` would be refused now, or None.

        Without keys and priorities, ``ahead`` is the whole queue: FIFO admission.
        ``memory`` and ``cost`` are the call's declared bytes and seconds.
        """
        queued = len(self._queue)
        parallel = self._budget.parallelism(self._max_workers, memory)
        per_slot = (self._budget.service(cost) or 0.05) / parallel
        if queued >= self._max_pending:
            excess = queued - self._max_pending + 1
            return Overloaded(
                round(excess * per_slot, 3),
                estimated_wait=self._estimate_wait(queued, memory, cost),
                queued=queued,
                reason="pending",
            )
        ahead = self._queue.ahead(key, priority)
        estimate = self._estimate_wait(ahead, memory, cost)
        if self._max_queue_wait is not None and estimate > self._max_queue_wait:
            service = self._budget.service(cost) or 0.0
            admissible = math.floor(self._max_queue_wait * parallel / service) - 1
            excess = ahead - max(admissible, 0)
            return Overloaded(
                round(max(excess, 1) * per_slot, 3),
                estimated_wait=estimate,
                queued=queued,
                reason="queue-wait",
            )
        return None

    def _admission(
        self, key: Key, priority: int, *, shed: bool, memory: int = 0, cost: float | None = None
    ) -> tuple[list[tuple[_Call[Any], Overloaded]], Overloaded | None]:
        """Decide whether a call of ``key`` may join (under the lock).

        Returns the queued calls pushed out to make room (with the refusal each
        gets; only when ``shed``) and the refusal for the arriving call, or None.

        Raises:
            PoolClosed: The pool is closed.
        """
        if self._closed:
            raise PoolClosed("the password hashing pool is closed")
        victims: list[tuple[_Call[Any], Overloaded]] = []
        while True:  # each turn pushes one call out, at most _MAX_SHED_PER_ARRIVAL turns
            refused = self._refusal(key, priority, memory, cost)
            if refused is None:
                return victims, None
            share, keys = self._fair_share(key)
            candidate = self._queue.shed_candidate(key, priority, share)
            if candidate is not None and len(victims) < _MAX_SHED_PER_ARRIVAL:
                if not shed:
                    return victims, None  # admitted once a bigger holder gives way
                victims.append(self._push_out(candidate, priority, share, keys, refused))
                continue
            held = self._queue.held(key)
            if keys == 1:
                pass  # one client (or none named): first come, first served
            elif held and held + 1 > share and held + 1 > self._queue.most_held_by_another(key):
                # The arriving key would hold more than its share, and more than
                # any other key, and no bigger holder has a queued call to give
                # up: it gives way.
                refused = Overloaded(
                    self._share_retry_after(key, share, keys),
                    estimated_wait=refused.estimated_wait,
                    queued=refused.queued,
                    reason="fair-share",
                )
            elif (
                refused.reason == "queue-wait"
                and self._queue.ahead(key, priority) < self._max_workers
            ):
                # A client within its share whose call starts as soon as one of
                # the running calls ends waits at most one service time, the
                # least any scheduler could offer it: admitted. Without this a
                # flood that keeps every worker busy would lock everyone else
                # out whenever max_queue_wait is below one service time.
                return victims, None
            break
        if shed:
            self._rejected += 1
            self._refusals[refused.reason] += 1
        return victims, refused

    def _push_out(
        self,
        candidate: tuple[_Call[Any], Key, int],
        priority: int,
        share: float,
        keys: int,
        refused: Overloaded,
    ) -> tuple[_Call[Any], Overloaded]:
        """Take a queued call out for a fairer claim; return it with the refusal it gets."""
        victim, victim_key, victim_priority = candidate
        reason = "priority" if victim_priority < priority else "fair-share"
        self._queue.remove(victim, victim_key, victim_priority)
        victim.state = _SHED
        self._shed += 1
        self._refusals[reason] += 1
        refusal = Overloaded(
            self._share_retry_after(victim_key, share, keys),
            estimated_wait=refused.estimated_wait,
            queued=len(self._queue),
            reason=reason,
        )
        return victim, refusal
