"""What happened to the pool's calls: counted and told to the listeners, in one place.

`Ledger` is the engine's bookkeeping part. Every event a call can have
(admitted, refused at the door, shed from the queue, cancelled, expired, run
to completion, run for a caller who had gone) is one `Ledger` method, which
counts it and queues it for the listeners (`HashPool.add_listener`); nothing
else in the engine counts or emits.

Counting happens under the engine's lock, where the event happens, so a
`statistics` snapshot taken under that lock is always consistent. Listeners
must not run under that lock (they may be slow, or read the statistics), so
the lock is a `Section`: a condition that, when a thread leaves it, hands
the events recorded meanwhile to the listeners, outside the lock and before
that thread answers any caller.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from typing import TYPE_CHECKING, Final

from loopsafe._statistics import REFUSAL_REASONS

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe.exceptions import Overloaded

__all__ = ["EVENTS", "Ledger", "Section"]

_log = logging.getLogger("loopsafe.pool")

#: Every event a listener may receive, with what its ``seconds`` mean.
EVENTS: Final = {
    "completed": "the call ran and returned: its service time",
    "failed": "the call ran and raised: its service time",
    "abandoned": "the call ran to the end for a caller who had gone: its service time",
    "rejected": "refused at the door with Overloaded: the estimated wait refused",
    "shed": "admitted, then pushed out of the queue with Overloaded: the estimated wait",
    "cancelled": "the caller was cancelled (or the pool closed) before it ran: 0.0",
    "expired": "the caller's deadline passed before it ran: 0.0",
}


class Ledger:
    """The pool's counters and listeners.

    The recording methods run under the engine's `Section`; the events they
    queue reach the listeners when the thread leaves it.
    """

    def __init__(self) -> None:
        """Start with no listener and every counter at zero."""
        self._listeners: tuple[Callable[[str, float], None], ...] = ()
        self.reset()

    def reset(self) -> None:
        """Zero the counters (a forked child's calls are not its parent's); keep the listeners."""
        self.admitted = 0
        self.completed = 0
        self.failed = 0
        self.rejected = 0
        self.cancelled = 0
        self.expired = 0
        self.abandoned = 0
        self.shed = 0
        self.service_seconds = 0.0
        self.refusals: Counter[str] = Counter()
        self._outbox: list[tuple[str, float]] = []

    # -- recording, under the engine's lock ---------------------------------------------

    def _tell(self, event: str, seconds: float) -> None:
        if self._listeners:
            self._outbox.append((event, seconds))

    def admit(self) -> None:
        """A call joined the queue."""
        self.admitted += 1

    def refuse(self, refusal: Overloaded) -> None:
        """A call was refused at the door (``"rejected"``)."""
        self.rejected += 1
        self.refusals[refusal.reason] += 1
        self._tell("rejected", refusal.estimated_wait)

    def push_out(self, refusal: Overloaded) -> None:
        """An admitted call left the queue with `Overloaded` before it ran (``"shed"``)."""
        self.shed += 1
        self.refusals[refusal.reason] += 1
        self._tell("shed", refusal.estimated_wait)

    def never_ran(self, *, expired: bool) -> None:
        """A call's caller left (or its deadline made it hopeless) before it ran."""
        if expired:
            self.expired += 1
        else:
            self.cancelled += 1
        self._tell("expired" if expired else "cancelled", 0.0)

    def ran(self, seconds: float, *, ok: bool, answered: bool, expired: bool) -> None:
        """A call ran for ``seconds``; ``answered``: its caller was still there."""
        self.service_seconds += seconds
        if answered:
            self.completed += 1
            self.failed += not ok
            self._tell("completed" if ok else "failed", seconds)
            return
        self.abandoned += 1
        if expired:
            self.expired += 1
        else:
            self.cancelled += 1
        self._tell("abandoned", seconds)

    def refusal_counts(self) -> dict[str, int]:
        """Refusals by reason, every reason present."""
        return {reason: self.refusals[reason] for reason in REFUSAL_REASONS}

    # -- listeners --------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[str, float], None]) -> None:
        """Tell ``callback`` every event from now on (under the engine's lock)."""
        self._listeners = (*self._listeners, callback)

    def remove_listener(self, callback: Callable[[str, float], None]) -> None:
        """Stop telling ``callback`` (under the engine's lock)."""
        self._listeners = tuple(cb for cb in self._listeners if cb is not callback)

    def take_events(self) -> tuple[tuple[str, float], ...]:
        """The events recorded since the last call, with the listeners (under the lock)."""
        if not self._outbox:
            return ()
        events, self._outbox = tuple(self._outbox), []
        return events

    def tell(self, events: tuple[tuple[str, float], ...]) -> None:
        """Call every listener with ``events`` (outside the lock); their errors are logged."""
        listeners = self._listeners
        for event, seconds in events:
            for callback in listeners:
                try:
                    callback(event, seconds)
                except Exception:  # noqa: BLE001, PERF203 - a broken exporter must not break hashing
                    _log.exception("loopsafe pool listener %r failed", callback)


class Section:
    """The engine's one lock: a condition whose exit tells the ledger's listeners.

    ``with section:`` holds the lock; leaving it hands the events recorded
    inside to the listeners after the lock is released. `wait` and `notify`
    are the condition's.
    """

    __slots__ = ("_cond", "_ledger")

    def __init__(self, ledger: Ledger) -> None:
        """Make a fresh lock for ``ledger``."""
        self._cond = threading.Condition(threading.Lock())
        self._ledger = ledger

    def __enter__(self) -> Self:
        """Take the lock."""
        self._cond.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release the lock, then tell the listeners what was recorded."""
        events = self._ledger.take_events()
        self._cond.release()
        if events:
            self._ledger.tell(events)

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock until notified (or ``timeout``), then take it again."""
        return self._cond.wait(timeout)

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` threads waiting in `wait`."""
        self._cond.notify(n)

    def notify_all(self) -> None:
        """Wake every thread waiting in `wait`."""
        self._cond.notify_all()
