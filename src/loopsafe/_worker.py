"""The workers: threads that take calls from the queue, hold their budget, run them, answer.

`Workers` is the engine's thread part (trio's thread cache with its
``CapacityLimiter``, in one): it starts threads lazily up to ``max_workers``,
lets surplus ones exit when the bound is lowered, and counts the calls
running. Each thread takes the next call unless its caller's deadline has
already made it hopeless, waits for the call's host slot and memory
(`loopsafe._budget`), checks once more that it can still finish in time, runs
it in the caller's context, gives the budget back, records it in the ledger
and answers the caller. A call whose caller left is never started; one that
was running finishes and its result is dropped. A call that raises
`MemoryError` (its memory could not be had) is answered `Overloaded`
(``reason="memory"``).

A cold pool (no service time known, `loopsafe._service`) learns one here,
on a worker thread: by running a caller's cost estimator before its first
call, or from the first call that finishes. At that moment the calls
admitted blind are judged again (the pool's ``rejudge``), and those that can
no longer start in time are answered with `Overloaded` at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from loopsafe._calls import _DONE, _EXPIRED, _RUNNING, _Call, _Hidden
from loopsafe._threads import become_worker
from loopsafe.exceptions import Overloaded

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from loopsafe import _waiting
    from loopsafe._budget import Budget
    from loopsafe._fair import FairQueue
    from loopsafe._ledger import Ledger, Section
    from loopsafe._service import ServiceTime

__all__ = ["Workers"]

_log = logging.getLogger("loopsafe.pool")

_log = logging.getLogger("loopsafe.pool")


class Workers:
    """A bounded set of worker threads serving one queue.

    Everything but the settings changes under the engine's `Section`.

    Args:
        section: The engine's lock.
        queue: The admitted calls.
        budget: Host slots and memory (`loopsafe._budget`).
        service: The service-time estimate, fed here.
        ledger: Where what happens to a call is recorded.
        rejudge: Called under the lock when a cold pool's service time
            becomes known; returns the queued calls it pushed out.
        max_workers: Calls that run at once.
        nice: How much to lower the threads' CPU priority.
        executor: Where to forward calls instead of running them here, or None.
        name: Prefix of the threads' names.
    """

    def __init__(
        self,
        section: Section,
        queue: FairQueue[_Call[Any]],
        budget: Budget,
        service: ServiceTime,
        ledger: Ledger,
        *,
        rejudge: Callable[[], list[tuple[_Call[Any], Overloaded]]],
        max_workers: int,
        nice: int,
        executor: Executor | None,
        name: str,
    ) -> None:
        """Start with no thread: they start on demand."""
        self._section = section
        self._queue = queue
        self._budget = budget
        self._service = service
        self._ledger = ledger
        self._rejudge = rejudge
        self.max_workers = max_workers
        self.nice = nice
        self.executor = executor
        self._name = name
        self.closed = False
        self.running = 0
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._seq = 0
        self._drained: list[_waiting.Deliver] = []

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        return len(self._threads)

    # -- driven by the pool, under the lock -----------------------------------------------

    def wake(self) -> None:
        """A call was queued: start a thread for it, or wake an idle one."""
        if len(self._queue) > self._idle and len(self._threads) < self.max_workers:
            self._start()
        else:
            self._section.notify()

    def resize(self, value: int) -> None:
        """Set ``max_workers``: start threads for queued calls, let surplus ones exit."""
        self.max_workers = value
        wanted = min(len(self._queue) - self._idle, value - len(self._threads))
        for _ in range(wanted):
            self._start()
        self._section.notify_all()  # idle workers beyond a lowered bound wake up and exit

    def close(self) -> list[_waiting.Deliver]:
        """Stop taking calls once the queue is empty; return the drain waiters to answer now."""
        self.closed = True
        self._section.notify_all()
        if not self._threads and not self._queue:
            return self._take_drain_waiters()
        return []

    def on_drained(self, deliver: _waiting.Deliver) -> bool:
        """Answer ``deliver`` when the last thread exits; False if none is alive now."""
        if not self._threads:
            return False
        self._drained.append(deliver)
        return True

    def _start(self) -> None:
        self._seq += 1
        thread = threading.Thread(
            target=self._work,
            name=f"{self._name}-worker-{self._seq}",
            # Daemon: a hash in flight must never hold interpreter exit hostage.
            # atexit closes every pool first, so queued callers are answered.
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()

    def _take_drain_waiters(self) -> list[_waiting.Deliver]:
        waiters, self._drained = self._drained, []
        return waiters

    # -- a worker thread ----------------------------------------------------------------------

    def _work(self) -> None:
        """Body of a worker thread: take calls from the queue until the pool closes."""
        become_worker(self.nice)
        while True:
            taken = self._next()
            if taken is None:
                return
            call, args = taken
            estimator = self._service.take_estimator()
            if estimator is not None and self._service.measure(estimator):
                self._judge_again()
            slot = self._take_budget(call) if self._budget.needed(call.memory) else _FREE
            if slot is None or not self._still_worth_running(call, slot):
                args.values = ()
                continue
            self._run_one(call, args, slot)

    def _next(self) -> tuple[_Call[Any], _Hidden] | None:
        """Wait for the next call that can still finish in time; None: this thread exits."""
        me = threading.current_thread()
        while True:
            with self._section:
                self._idle += 1
                while not self.closed and (not self._queue or self.running >= self.max_workers):
                    if len(self._threads) > self.max_workers:
                        break  # the bound was lowered: this thread is one too many
                    self._section.wait()
                self._idle -= 1
                surplus = len(self._threads) > self.max_workers and not self.closed
                if surplus or not self._queue:  # lowered bound, or closed and nothing left
                    self._threads.discard(me)
                    self._section.notify()  # a sibling waiting for a free slot may take one
                    waiters = self._take_drain_waiters() if not self._threads else []
                    break
                call = self._queue.pop()
                self._budget.set_queued(len(self._queue))
                hopeless = self._hopeless(call)
                if hopeless:
                    call.state = _EXPIRED
                    self._queue.release(call.key)
                    self._ledger.never_ran(expired=True)
                else:
                    call.state = _RUNNING
                    self.running += 1
                    # Taken under the lock: once the caller has gone, `run` empties it.
                    args = _Hidden(call.args.values)
            if hopeless:
                call.deliver(False, _hopeless_error())
                continue
            return call, args
        for deliver in waiters:
            deliver(True, None)
        return None

    def _judge_again(self) -> None:
        """The service time just became known: answer the calls that can no longer start in time."""
        with self._section:
            verdicts = self._rejudge()
            self._budget.set_queued(len(self._queue))
        for call, refusal in verdicts:
            call.deliver(False, refusal)

    def _finished(self, call: _Call[Any]) -> None:
        """A taken call leaves without running (under the lock)."""
        self.running -= 1
        self._queue.release(call.key)
        self._section.notify()

    # -- the budget: host slots and memory ----------------------------------------------

    def _hopeless(self, call: _Call[Any]) -> bool:
        """Whether the call cannot finish before its deadline (`ServiceTime.worst`)."""
        if call.deadline is None:
            return False
        remaining = call.deadline - time.monotonic()
        expected = self._service.worst()
        return remaining <= 0 or (expected is not None and remaining < expected)

    def _take_budget(self, call: _Call[Any]) -> int | None:
        """Wait for the call's host slot and memory; None (recorded) if its caller left."""
        slot = self._budget.take(call.memory, give_up=lambda: call.state != _RUNNING)
        if slot is None:
            with self._section:
                self._finished(call)
                self._ledger.never_ran(expired=call.state == _EXPIRED)
        return slot

    def _still_worth_running(self, call: _Call[Any], slot: int) -> bool:
        """After waiting for the budget: run the call only if it can still finish in time."""
        if slot == _FREE:
            return True
        with self._section:
            if call.state == _RUNNING and not self._hopeless(call):
                return True
            gone = call.state != _RUNNING
            if not gone:
                call.state = _EXPIRED
            self._finished(call)
            self._ledger.never_ran(expired=call.state == _EXPIRED)
            # The slot goes back under the lock so the listeners hear after it is free.
            self._budget.give_back(call.memory, slot)
        if not gone:
            call.deliver(False, _hopeless_error())
        return False

    def _run_one(self, call: _Call[Any], args: _Hidden, slot: int) -> None:
        """Run a call outside the lock, record it, and answer its caller.

        An exception's traceback carries this frame to the caller: the
        arguments stay in ``args`` (hidden repr) and are gone before the answer.
        """
        start = time.perf_counter()
        ok, value = self._invoke(call, args)
        elapsed = time.perf_counter() - start
        # Drop references to the arguments (passwords) before anyone is answered.
        args.values = call.args.values = ()
        if slot != _FREE:
            self._budget.give_back(call.memory, slot)  # free before the caller hears
        first_estimate = self._service.record(elapsed)
        with self._section:
            self._finished(call)
            state = call.state
            answered = state == _RUNNING
            if answered:
                call.state = _DONE
            # Recorded (and told to the listeners as the lock is left) before the
            # caller has its answer: a collector that moves its listener to a new
            # pool cannot miss the call.
            self._ledger.ran(elapsed, ok=ok, answered=answered, expired=state == _EXPIRED)
        if first_estimate:
            self._judge_again()
        if answered:
            call.deliver(ok, value)
        del value

    def _invoke(self, call: _Call[Any], args: _Hidden) -> tuple[bool, object]:
        """Run the callable: (True, its value) or (False, the exception for its caller)."""
        try:
            if self.executor is not None:
                return True, self.executor.submit(call.fn, *args.values).result()
            if call.context is not None:
                return True, call.context.run(call.fn, *args.values)
            return True, call.fn(*args.values)  # pragma: no cover - no context: an executor
        except MemoryError:
            # The kernel (or Python) refused the hash its memory: a full machine or
            # container, not a wrong password or a bug. Overloaded, like a full queue.
            return False, self._memory_refused(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
            return False, exc

    def _memory_refused(self, call: _Call[Any]) -> Overloaded:
        """The answer to a call whose hash could not get its memory; logged in one line.

        The worker lives on, its slot and memory go back as after any call, and
        the caller hears `Overloaded` (a 503 with ``Retry-After`` in the
        integrations), retrying after about one service time: the memory the
        running hashes hold is free by then.
        """
        retry_after = self._service.estimate() or 1.0
        with self._section:
            queued = len(self._queue)
        _log.warning(
            "a hash could not get its memory (%d bytes declared, %d calls queued): "
            "answered Overloaded, retry after %.2fs",
            call.memory,
            queued,
            retry_after,
        )
        return Overloaded(retry_after, estimated_wait=0.0, queued=queued, reason="memory")


#: The "slot" of a call that needed no budget at all (`Budget.take` never returns it).
_FREE: Final = -2


def _hopeless_error() -> TimeoutError:
    return TimeoutError("the call's deadline would pass before it could finish; it never ran")
