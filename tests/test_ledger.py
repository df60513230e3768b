"""The ledger: every event is counted and told to the listeners in one place, outside the lock."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from loopsafe import HashPool, Overloaded
from loopsafe._ledger import EVENTS, Ledger, Section

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_every_event_is_documented_for_listeners(event):
    """add_listener's docstring names each event a listener can receive, "shed" included."""
    assert f'"{event}"' in (HashPool.add_listener.__doc__ or "")


def test_events_reach_listeners_only_after_the_lock_is_left():
    """A listener runs once the section is left, so it may take the lock itself."""
    ledger = Ledger()
    section = Section(ledger)
    heard: list[tuple[str, float]] = []

    def listener(event: str, seconds: float) -> None:
        with section:  # would deadlock if called under the lock
            heard.append((event, seconds))

    with section:
        ledger.add_listener(listener)
    with section:
        ledger.ran(0.5, ok=True, answered=True, expired=False)
        ledger.never_ran(expired=True)
        assert heard == []
    assert heard == [("completed", 0.5), ("expired", 0.0)]
    assert (ledger.completed, ledger.expired, ledger.service_seconds) == (1, 1, 0.5)


def test_a_run_for_a_caller_who_left_counts_as_abandoned():
    """A call that ran for a caller who had gone is abandoned and cancelled or expired."""
    ledger = Ledger()
    section = Section(ledger)
    heard: list[str] = []
    with section:
        ledger.add_listener(lambda event, _seconds: heard.append(event))
        ledger.ran(0.1, ok=True, answered=False, expired=False)
        ledger.ran(0.1, ok=False, answered=False, expired=True)
    assert heard == ["abandoned", "abandoned"]
    assert (ledger.abandoned, ledger.cancelled, ledger.expired, ledger.completed) == (2, 1, 1, 0)


def test_refusals_and_sheds_count_by_reason():
    """Refused at the door and pushed out of the queue: each counted once, by reason."""
    ledger = Ledger()
    ledger.refuse(Overloaded(1.0, estimated_wait=2.0, queued=3, reason="queue-wait"))
    ledger.push_out(Overloaded(1.0, estimated_wait=2.0, queued=3, reason="fair-share"))
    assert (ledger.rejected, ledger.shed) == (1, 1)
    assert ledger.refusal_counts() == {
        "pending": 0,
        "queue-wait": 1,
        "fair-share": 1,
        "priority": 0,
    }


def test_a_broken_listener_is_logged_and_the_rest_still_hear(caplog):
    """A listener that raises is logged; the next listener still gets the event."""
    ledger = Ledger()
    section = Section(ledger)
    heard: list[str] = []

    def broken(_event: str, _seconds: float) -> None:
        raise RuntimeError("exporter down")

    with section:
        ledger.add_listener(broken)
        ledger.add_listener(lambda event, _seconds: heard.append(event))
        ledger.never_ran(expired=False)
    assert heard == ["cancelled"]
    assert "listener" in caplog.text


async def test_a_snapshot_always_adds_up_while_calls_come_and_go():
    """statistics() taken while four threads hammer the pool always balances."""
    pool = HashPool(2, max_queue_wait=None)
    stop = threading.Event()
    bad: list[object] = []

    def watch() -> None:
        while not stop.is_set():
            s = pool.statistics()
            ended = s.completed + s.cancelled + s.expired + s.shed
            if s.admitted != ended + s.running + s.queued:
                bad.append(s)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(pool.run, time.sleep, 0)
    finally:
        stop.set()
        watcher.join()
        pool.close()
    assert bad == []
