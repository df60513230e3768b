"""Admission: who may join the queue now, who gives way, and who is judged again.

`Admission` is the engine's door. It answers *admit*, *refuse* or *shed*
for a call arriving now, from the queue, the workers' bound and the service
time. Without keys (one shared key) it is first-come admission: a call is
refused when the queue holds ``max_pending`` calls or its estimated wait
exceeds ``max_queue_wait``. With keys, when a call would be refused:

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

A cold pool knows no service time, so it cannot judge a wait and admits.
When the service time becomes known (`loopsafe._service`), `rejudge` trims
the queue to what the door would have admitted, pushing out (``shed``,
``reason="queue-wait"``) the newest calls of the keys holding most.

Everything here runs under the engine's lock, and records what it refuses in
the ledger. Keys are never put in a message.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

from loopsafe._calls import _SHED
from loopsafe.exceptions import Overloaded

if TYPE_CHECKING:
    from loopsafe._budget import Budget
    from loopsafe._calls import _Call
    from loopsafe._fair import FairQueue, Key
    from loopsafe._ledger import Ledger
    from loopsafe._service import Cost, ServiceTime
    from loopsafe._worker import Workers

__all__ = ["Admission"]

#: Most queued calls one arrival may push out before it is refused itself.
_MAX_SHED_PER_ARRIVAL: Final = 4


class Admission:
    """The door of one pool: its two settings and the judgement, over the other parts' state.

    Args:
        queue: The admitted calls.
        workers: The workers (their bound and the calls running).
        budget: Host slots and memory, for the estimated wait.
        service: The service-time estimate.
        ledger: Where refusals are recorded.
        max_queue_wait: Longest estimated wait admitted (None: no such check).
        max_pending: Most calls queued at once.
    """

    def __init__(
        self,
        queue: FairQueue[_Call[Any]],
        workers: Workers,
        budget: Budget,
        service: ServiceTime,
        ledger: Ledger,
        *,
        max_queue_wait: float | None,
        max_pending: int,
    ) -> None:
        """Keep the parts it reads and the settings it owns."""
        self._queue = queue
        self._workers = workers
        self._budget = budget
        self._service = service
        self._ledger = ledger
        self.max_queue_wait = max_queue_wait
        self.max_pending = max_pending

    def estimate_wait(self, queued_ahead: int, memory: int = 0, cost: Cost = None) -> float:
        """Seconds a call with ``queued_ahead`` calls before it would wait to start.

        `Budget.estimate_wait`: this pool's workers and, with a host budget, the
        host's other processes; a cold pool goes by ``cost``.
        """
        workers = self._workers
        return self._budget.estimate_wait(
            workers.max_workers,
            workers.running,
            queued_ahead,
            memory,
            self._service.estimate(cost),
        )

    def decide(
        self, key: Key, priority: int, *, memory: int = 0, cost: Cost = None
    ) -> tuple[list[tuple[_Call[Any], Overloaded]], Overloaded | None]:
        """Admit, refuse or shed for a call arriving now, and record the refusals.

        Returns:
            The queued calls pushed out to make room (each with its refusal),
            and the arriving call's refusal, or None if it is admitted.
        """
        victims, refused = self._admission(key, priority, shed=True, memory=memory, cost=cost)
        if refused is not None:
            self._ledger.refuse(refused)
        return victims, refused

    def dry_run(self, key: Key, priority: int, *, count: bool) -> Overloaded | None:
        """The refusal a call of ``key`` would get now; admits and pushes out nothing.

        With ``count``, a refusal is recorded like one at the door: the caller
        answers it to its client.
        """
        refused = self._admission(key, priority, shed=False)[1]
        if refused is not None and count:
            self._ledger.refuse(refused)
        return refused

    def rejudge(self) -> list[tuple[_Call[Any], Overloaded]]:
        """Trim the queue to what can start within ``max_queue_wait``; shed the rest.

        For a cold pool whose service time just became known: the calls it
        admitted blind that could no longer start in time are taken out
        (recorded as ``shed``, ``reason="queue-wait"``), to be answered with
        `Overloaded` now rather than left waiting past their callers'
        patience. The queue keeps as many calls as the door would have
        admitted; each one taken out is the newest call of the key holding
        most (`FairQueue.last_in_line`), so a flood loses its calls first.
        """
        service = self._service.estimate()
        verdicts: list[tuple[_Call[Any], Overloaded]] = []
        if self.max_queue_wait is None or not service:
            return verdicts
        while (last := self._queue.last_in_line()) is not None:
            call, key, priority = last
            ahead = len(self._queue) - 1
            estimate = self.estimate_wait(ahead, call.memory)
            if estimate <= self.max_queue_wait:
                break
            parallel = self._budget.parallelism(self._workers.max_workers, call.memory)
            admissible = max(math.floor(self.max_queue_wait * parallel / service) - 1, 0)
            refusal = Overloaded(
                round(max(ahead - admissible, 1) * service / parallel, 3),
                estimated_wait=estimate,
                queued=ahead,
                reason="queue-wait",
            )
            self._queue.remove(call, key, priority)
            call.state = _SHED
            self._ledger.push_out(refusal)
            verdicts.append((call, refusal))
        return verdicts

    def _fair_share(self, arriving: Key) -> tuple[float, int]:
        """Return (slots per key, keys) if a call of ``arriving`` joined now.

        The slots are the calls the pool holds within its bounds: the workers
        plus the queue that ``max_queue_wait`` (or ``max_pending``) admits.
        """
        keys = self._queue.active_keys + (self._queue.held(arriving) == 0)
        queue = self.max_pending
        service = self._service.estimate()
        workers = self._workers.max_workers
        if self.max_queue_wait is not None and service:
            by_wait = math.floor(self.max_queue_wait * workers / service)
            queue = min(queue, max(by_wait, 1))
        return (workers + queue) / keys, keys

    def _share_retry_after(self, key: Key, share: float, keys: int) -> float:
        """Seconds until ``key`` is back within ``share``, served 1/``keys`` of the workers."""
        excess = max(self._queue.held(key) + 1 - share, 1.0)
        per_call = (self._service.estimate() or 0.05) * keys / self._workers.max_workers
        return round(excess * per_call, 3)

    def _refusal(
        self, key: Key, priority: int, memory: int = 0, cost: Cost = None
    ) -> Overloaded | None:
        """Return why a call of ``key`` and ``priority`` would be refused now, or None.

        Without keys and priorities, ``ahead`` is the whole queue: FIFO admission.
        ``memory`` and ``cost`` are the call's declared bytes and seconds.
        """
        queued = len(self._queue)
        parallel = self._budget.parallelism(self._workers.max_workers, memory)
        service = self._service.estimate(cost)
        per_slot = (service or 0.05) / parallel
        if queued >= self.max_pending:
            excess = queued - self.max_pending + 1
            return Overloaded(
                round(excess * per_slot, 3),
                estimated_wait=self.estimate_wait(queued, memory, cost),
                queued=queued,
                reason="pending",
            )
        ahead = self._queue.ahead(key, priority)
        estimate = self.estimate_wait(ahead, memory, cost)
        if self.max_queue_wait is not None and estimate > self.max_queue_wait and service:
            admissible = math.floor(self.max_queue_wait * parallel / service) - 1
            excess = ahead - max(admissible, 0)
            return Overloaded(
                round(max(excess, 1) * per_slot, 3),
                estimated_wait=estimate,
                queued=queued,
                reason="queue-wait",
            )
        return None

    def _admission(
        self, key: Key, priority: int, *, shed: bool, memory: int = 0, cost: Cost = None
    ) -> tuple[list[tuple[_Call[Any], Overloaded]], Overloaded | None]:
        """Decide whether a call of ``key`` may join (under the lock).

        Returns the queued calls pushed out to make room (with the refusal each
        gets; only when ``shed``) and the refusal for the arriving call, or None.
        """
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
                and self._queue.ahead(key, priority) < self._workers.max_workers
            ):
                # A client within its share whose call starts as soon as one of
                # the running calls ends waits at most one service time, the
                # least any scheduler could offer it: admitted. Without this a
                # flood that keeps every worker busy would lock everyone else
                # out whenever max_queue_wait is below one service time.
                return victims, None
            break
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
        refusal = Overloaded(
            self._share_retry_after(victim_key, share, keys),
            estimated_wait=refused.estimated_wait,
            queued=len(self._queue),
            reason=reason,
        )
        self._ledger.push_out(refusal)
        return victim, refusal
