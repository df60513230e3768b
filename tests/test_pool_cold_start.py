"""A fresh pool needs no start-up call: it refuses the part of a burst it cannot serve.

Until a pool knows a service time it admits; the moment it learns one (a
caller's cost estimator run on a worker thread, or the first answer) it
judges the calls queued meanwhile again and answers those that can no longer
start within ``max_queue_wait`` with `Overloaded` at once. Real threads,
cheap parameters.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import anyio
import pytest

from loopsafe import HashPool, Overloaded, PasswordHash, PBKDF2Hasher, PoolStatistics

pytestmark = pytest.mark.anyio

#: PBKDF2 iteration counts nothing has estimated yet (the estimate is cached per parameters).
_FRESH_ITERATIONS = itertools.count(40_001)

#: The burst: calls at once, and the clients' patience in seconds.
BURST = 60
CLIENT_TIMEOUT = 2.0


def _assert_consistent(stats: PoolStatistics) -> None:
    ended = stats.completed + stats.cancelled + stats.expired + stats.shed
    assert stats.admitted == ended + stats.running + stats.queued, stats


class _Outcomes:
    """What each caller of a burst got, in the order the answers arrived."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.refusals: list[Overloaded] = []

    def count(self, kind: str) -> int:
        return self.order.count(kind)

    async def call(self, run: Any) -> None:
        try:
            await run()
        except Overloaded as refused:
            self.refusals.append(refused)
            self.order.append("refused")
        except TimeoutError:
            self.order.append("timed out")
        else:
            self.order.append("answered")

    async def burst(self, run: Any, calls: int = BURST) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(calls):
                tg.start_soon(self.call, run)


class _WatchedPBKDF2(PBKDF2Hasher):
    """PBKDF2 that notes which thread measures its cost."""

    measured_on: list[str] = []  # noqa: RUF012 - one list for the class, read by the test

    def estimated_seconds(self) -> float | None:
        type(self).measured_on.append(threading.current_thread().name)
        return super().estimated_seconds()


async def test_a_fresh_pool_refuses_most_of_a_burst_of_an_unknown_callable():
    """60 calls of an unknown 50 ms callable on a fresh 1-worker pool: most refused, none lost."""
    events: list[str] = []
    async with HashPool(1, max_queue_wait=0.2) as pool:
        pool.add_listener(lambda event, _seconds: events.append(event))
        outcomes = _Outcomes()
        await outcomes.burst(lambda: pool.run(time.sleep, 0.05, timeout=CLIENT_TIMEOUT))
        stats = pool.statistics()
    assert outcomes.count("refused") >= BURST // 2, outcomes.order
    assert outcomes.count("timed out") == 0, outcomes.order
    assert outcomes.count("answered") + outcomes.count("refused") == BURST
    assert all(refused.retry_after > 0 for refused in outcomes.refusals)
    # Admitted blind, then judged again by the first answer: shed, not refused at the door.
    assert stats.shed + stats.rejected == outcomes.count("refused")
    assert stats.completed == outcomes.count("answered")
    assert events.count("shed") == stats.shed
    _assert_consistent(stats)


async def test_a_fresh_password_hash_refuses_most_of_a_burst_before_any_answer():
    """A fresh PasswordHash measures its cost on a worker and refuses the surplus at once."""
    _WatchedPBKDF2.measured_on.clear()
    hasher = _WatchedPBKDF2(iterations=next(_FRESH_ITERATIONS))
    stored = hasher.hash("pw")
    async with HashPool(1, max_queue_wait=0.2, name="cold") as pool:
        ph = PasswordHash([hasher], pool=pool)
        outcomes = _Outcomes()
        await outcomes.burst(lambda: ph.averify("pw", stored, timeout=CLIENT_TIMEOUT))
        stats = pool.statistics()
    assert outcomes.count("refused") >= BURST // 2, outcomes.order
    assert outcomes.count("timed out") == 0, outcomes.order
    assert outcomes.count("answered") >= 1
    assert all(refused.retry_after > 0 for refused in outcomes.refusals)
    # Judged by the estimate, before the first hash finished; measured off the loop.
    assert outcomes.order[0] == "refused", outcomes.order
    assert _WatchedPBKDF2.measured_on
    assert all(name.startswith("cold-worker-") for name in _WatchedPBKDF2.measured_on)
    _assert_consistent(stats)


async def test_a_burst_within_the_budget_is_not_refused():
    """A fresh pool refuses nothing of a burst it can serve within max_queue_wait."""
    async with HashPool(2, max_queue_wait=1.0) as pool:
        outcomes = _Outcomes()
        await outcomes.burst(lambda: pool.run(time.sleep, 0.02), calls=6)
    assert outcomes.order == ["answered"] * 6


async def test_a_cold_burst_sheds_the_flooding_key_first():
    """Judged again on a fresh pool, the key that floods loses its calls; another key is served."""
    async with HashPool(1, max_queue_wait=0.2) as pool:
        flood, other = _Outcomes(), _Outcomes()
        async with anyio.create_task_group() as tg:
            tg.start_soon(flood.burst, lambda: pool.run(time.sleep, 0.05, key="flood"), 40)
            tg.start_soon(other.burst, lambda: pool.run(time.sleep, 0.05, key="other"), 2)
        stats = pool.statistics()
    # The queue is trimmed to ~3 calls, newest of the biggest holder first: the flood
    # is cut down to the other key's size (at a tie either may give one up).
    assert other.count("answered") >= 1, other.order
    assert flood.count("refused") >= 30, flood.order
    assert flood.count("timed out") == 0
    assert all(refused.retry_after > 0 for refused in flood.refusals)
    _assert_consistent(stats)


async def test_an_estimator_that_fails_leaves_the_first_answer_to_judge():
    """A cost estimator that raises is logged and ignored; the first answer still sheds."""

    def broken() -> float:
        raise RuntimeError("no estimate here")

    async with HashPool(1, max_queue_wait=0.2) as pool:
        outcomes = _Outcomes()
        await outcomes.burst(lambda: pool.run(time.sleep, 0.05, cost=broken), calls=30)
    assert outcomes.count("refused") >= 15, outcomes.order
    assert outcomes.count("answered") + outcomes.count("refused") == 30


async def test_a_declared_cost_refuses_at_the_door():
    """With seconds declared as ``cost=``, a fresh pool refuses the surplus before queueing it."""
    release = threading.Event()
    async with HashPool(1, max_queue_wait=0.2) as pool:
        outcomes = _Outcomes()
        async with anyio.create_task_group() as tg:
            tg.start_soon(outcomes.burst, lambda: pool.run(release.wait, 5, cost=0.05), 20)
            await anyio.sleep(0.1)
            release.set()
        stats = pool.statistics()
    assert stats.rejected == outcomes.count("refused") >= 10
    assert stats.shed == 0
