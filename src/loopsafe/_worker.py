"""What a worker thread does with a call: take it, hold its budget, run it, answer.

`HashPool` (in `loopsafe._pool`) decides at the door and owns the queue; its
worker threads run `_WorkerLoop._work`: take the next call unless its caller's
deadline has already made it hopeless, wait for the call's host slot and
memory (`loopsafe._budget`), check once more that it can still finish in time,
run it in the caller's context, give the budget back, account for it and
answer the caller. A call whose caller left is never started; one that was
running finishes and its result is dropped. A call that raises `MemoryError`
(its memory could not be had) is answered `Overloaded` (``reason="memory"``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final

from loopsafe._calls import _CANCELLED, _DONE, _EXPIRED, _RUNNING, _Call, _Hidden
from loopsafe._threads import become_worker
from loopsafe.exceptions import Overloaded

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from loopsafe import _waiting
    from loopsafe._budget import Budget
    from loopsafe._fair import FairQueue

__all__: list[str] = []

_log = logging.getLogger("loopsafe.pool")


class _WorkerLoop:
    """The worker threads' half of `HashPool` (a base class; it owns no state)."""

    # Set by HashPool; all but the budget and the settings change under _cond.
    _cond: threading.Condition
    _queue: FairQueue[_Call[Any]]
    _threads: set[threading.Thread]
    _budget: Budget
    _executor: Executor | None
    _listeners: tuple[Any, ...]
    _closed: bool
    _nice: int
    _max_workers: int
    _idle: int
    _running: int
    _completed: int
    _failed: int
    _expired: int
    _cancelled: int
    _abandoned: int
    _service_total: float

    def _emit(self, event: str, seconds: float) -> None:
        raise NotImplementedError

    def _take_drain_waiters(self) -> list[_waiting.Deliver]:
        raise NotImplementedError

    def _work(self) -> None:
        """Body of a worker thread: take calls from the queue until the pool closes."""
        me = threading.current_thread()
        become_worker(self._nice)
        cond = self._cond
        while True:
            with cond:
                self._idle += 1
                while not self._closed and (not self._queue or self._running >= self._max_workers):
                    if len(self._threads) > self._max_workers:
                        break  # the bound was lowered: this thread is one too many
                    cond.wait()
                self._idle -= 1
                surplus = len(self._threads) > self._max_workers and not self._closed
                if surplus or not self._queue:  # lowered bound, or closed and nothing left
                    self._threads.discard(me)
                    cond.notify()  # a sibling waiting for a free slot may now take one
                    waiters = self._take_drain_waiters() if not self._threads else []
                    break
                call = self._queue.pop()
                self._budget.set_queued(len(self._queue))
                if self._hopeless(call):
                    call.state = _EXPIRED
                    self._expired += 1
                    self._queue.release(call.key)
                    expired = True
                else:
                    call.state = _RUNNING
                    self._running += 1
                    expired = False
                    # Taken under the lock: once the caller has gone, `run` empties it.
                    taken = _Hidden(call.args.values)
            if expired:
                self._emit("expired", 0.0)
                call.deliver(False, _hopeless_error())
                continue
            slot = self._take_budget(call) if self._budget.needed(call.memory) else _FREE
            if slot is None or not self._still_worth_running(call, slot):
                taken.values = ()
                continue
            self._run_one(call, taken, slot)
        for deliver in waiters:
            deliver(True, None)

    # -- the budget: host slots and memory ----------------------------------------------

    def _hopeless(self, call: _Call[Any]) -> bool:
        """Whether the call cannot finish before its deadline (`Budget.worst_service`)."""
        if call.deadline is None:
            return False
        remaining = call.deadline - time.monotonic()
        expected = self._budget.worst_service()
        return remaining <= 0 or (expected is not None and remaining < expected)

    def _take_budget(self, call: _Call[Any]) -> int | None:
        """Wait for the call's host slot and memory; None (counted) if its caller left."""
        slot = self._budget.take(call.memory, give_up=lambda: call.state != _RUNNING)
        if slot is None:
            with self._cond:
                self._running -= 1
                self._queue.release(call.key)
                self._expired += call.state == _EXPIRED
                self._cancelled += call.state != _EXPIRED
                self._cond.notify()
            self._emit("expired" if call.state == _EXPIRED else "cancelled", 0.0)
        return slot

    def _still_worth_running(self, call: _Call[Any], slot: int) -> bool:
        """After waiting for the budget: run the call only if it can still finish in time."""
        if slot == _FREE:
            return True
        with self._cond:
            if call.state == _RUNNING and not self._hopeless(call):
                return True
            gone = call.state != _RUNNING
            if not gone:
                call.state = _EXPIRED
            self._running -= 1
            self._queue.release(call.key)
            self._expired += call.state == _EXPIRED
            self._cancelled += call.state == _CANCELLED
            self._cond.notify()
        self._budget.give_back(call.memory, slot)
        self._emit("expired" if call.state == _EXPIRED else "cancelled", 0.0)
        if not gone:
            call.deliver(False, _hopeless_error())
        return False

    def _run_one(self, call: _Call[Any], taken: _Hidden, slot: int) -> None:
        """Run a call outside the lock, account for it, and answer its caller.

        An exception's traceback carries this frame to the caller: the
        arguments stay in ``taken`` (hidden repr) and are gone before the answer.
        """
        start = time.perf_counter()
        ok, value = self._invoke(call, taken)
        elapsed = time.perf_counter() - start
        # Drop references to the arguments (passwords) before anyone is answered.
        taken.values = call.args.values = ()
        if slot != _FREE:
            self._budget.give_back(call.memory, slot)  # free before the caller hears
        self._budget.record(elapsed)
        with self._cond:
            self._running -= 1
            self._queue.release(call.key)
            self._service_total += elapsed
            state = call.state
            if state == _RUNNING:
                call.state = _DONE
                self._completed += 1
                if not ok:
                    self._failed += 1
            else:
                self._abandoned += 1
                if state == _EXPIRED:
                    self._expired += 1
                else:
                    self._cancelled += 1
        # Listeners first: once a caller has its answer, the metrics include its call
        # (a collector that moves its listener to a new pool cannot miss it).
        if self._listeners:
            event = "abandoned" if state != _RUNNING else "completed" if ok else "failed"
            self._emit(event, elapsed)
        if state == _RUNNING:
            call.deliver(ok, value)
        del value

    def _invoke(self, call: _Call[Any], taken: _Hidden) -> tuple[bool, object]:
        """Run the callable: (True, its value) or (False, the exception for its caller)."""
        try:
            if self._executor is not None:
                return True, self._executor.submit(call.fn, *taken.values).result()
            if call.context is not None:
                return True, call.context.run(call.fn, *taken.values)
            return True, call.fn(
                *taken.values
            )  # pragma: no cover - a call without a context has an executor
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
        retry_after = self._budget.service() or 1.0
        with self._cond:
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
