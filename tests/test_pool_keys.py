"""Keyed admission: HashPool.run(key=..., priority=...) shares a busy pool fairly across clients."""

from __future__ import annotations

import pickle
import threading

import anyio
import pytest

from loopsafe import HashPool, Overloaded, PoolStatistics

pytestmark = pytest.mark.anyio

FLOOD_KEY = "10.66.0.1"


class Gate:
    """Blocks its worker until released; records the order calls started in."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.order: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, label: str) -> str:
        with self._lock:
            self.order.append(label)
        self.started.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("gate never released")
        return label


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.002)


def _assert_consistent(stats: PoolStatistics) -> None:
    assert stats.admitted == (
        stats.completed
        + stats.cancelled
        + stats.expired
        + stats.shed
        + stats.running
        + stats.queued
    ), stats


class Outcomes:
    """Collects each labelled call's result or refusal."""

    def __init__(self) -> None:
        self.results: dict[str, object] = {}

    async def call(self, pool: HashPool, gate: Gate, label: str, **kwargs: object) -> None:
        try:
            self.results[label] = await pool.run(gate, label, **kwargs)  # type: ignore[arg-type]
        except Overloaded as refused:
            self.results[label] = refused


async def _fill_with_flood(pool: HashPool, gate: Gate, seen: Outcomes, tg) -> None:
    """One worker busy and the queue (max_pending=2) full, all with key "flood"."""
    tg.start_soon(lambda: seen.call(pool, gate, "flood-1", key="10.66.0.1"))
    await anyio.to_thread.run_sync(gate.started.wait)
    for n in (2, 3):  # one at a time: trio does not promise to start tasks in order
        tg.start_soon(lambda n=n: seen.call(pool, gate, f"flood-{n}", key="10.66.0.1"))
        await _wait_for(lambda n=n: pool.statistics().queued == n - 1)


async def test_without_keys_a_full_queue_refuses_as_before() -> None:
    """Calls without a key: a full queue refuses the newcomer ("pending"), FIFO order."""
    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: seen.call(pool, gate, "a"))
        await anyio.to_thread.run_sync(gate.started.wait)
        tg.start_soon(lambda: seen.call(pool, gate, "b"))
        await _wait_for(lambda: pool.statistics().queued == 1)
        tg.start_soon(lambda: seen.call(pool, gate, "c"))
        await _wait_for(lambda: pool.statistics().queued == 2)
        await seen.call(pool, gate, "d")
        gate.release.set()
    refused = seen.results["d"]
    assert isinstance(refused, Overloaded)
    assert refused.reason == "pending"
    assert gate.order == ["a", "b", "c"]
    stats = pool.statistics()
    assert stats.refusals == {"pending": 1, "queue-wait": 0, "fair-share": 0, "priority": 0}
    assert (stats.shed, stats.active_keys) == (0, 0)
    _assert_consistent(stats)
    pool.close()


async def test_newcomer_pushes_out_the_flood_and_the_flood_is_refused_first() -> None:
    """A key below its share gets in by shedding the flood's newest call; the flood is refused."""
    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        await _fill_with_flood(pool, gate, seen, tg)
        tg.start_soon(lambda: seen.call(pool, gate, "user", key="10.0.0.7"))
        await _wait_for(lambda: pool.statistics().shed == 1)
        assert pool.statistics().active_keys == 2
        await seen.call(pool, gate, "flood-4", key="10.66.0.1")
        gate.release.set()
    shed, refused = seen.results["flood-3"], seen.results["flood-4"]
    assert isinstance(shed, Overloaded)
    assert shed.reason == "fair-share"
    assert isinstance(refused, Overloaded)
    assert refused.reason == "fair-share"
    assert seen.results["user"] == "user"
    assert gate.order == ["flood-1", "flood-2", "user"]
    stats = pool.statistics()
    assert stats.refusals["fair-share"] == 2
    assert (stats.shed, stats.rejected, stats.active_keys) == (1, 1, 0)
    _assert_consistent(stats)
    pool.close()


async def test_fair_share_retry_after_is_longer_for_the_bigger_holder() -> None:
    """The flood is told to wait longer than a client holding one call would be."""
    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        await _fill_with_flood(pool, gate, seen, tg)
        tg.start_soon(lambda: seen.call(pool, gate, "user", key="10.0.0.7"))
        await _wait_for(lambda: pool.statistics().shed == 1)
        await seen.call(pool, gate, "flood-4", key="10.66.0.1")
        await seen.call(pool, gate, "user-2", key="10.0.0.7")
        gate.release.set()
    flood, user = seen.results["flood-4"], seen.results["user-2"]
    assert isinstance(flood, Overloaded)
    assert isinstance(user, Overloaded)
    assert flood.retry_after > user.retry_after
    pool.close()


async def test_calls_are_dispatched_round_robin_across_keys() -> None:
    """With one worker, queued calls of two keys alternate instead of running in arrival order."""
    pool = HashPool(1, max_pending=100, max_queue_wait=None, nice=0)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: seen.call(pool, gate, "first", key="x"))
        await anyio.to_thread.run_sync(gate.started.wait)
        for n, label in enumerate(("a1", "a2", "a3", "b1", "b2", "b3")):
            tg.start_soon(lambda label=label: seen.call(pool, gate, label, key=label[0]))
            await _wait_for(lambda n=n: pool.statistics().admitted == n + 2)
        gate.release.set()
    assert gate.order == ["first", "a1", "b1", "a2", "b2", "a3", "b3"]
    pool.close()


async def test_higher_priority_pushes_out_lower_priority() -> None:
    """A full queue sheds a lower-priority call ("priority") for a higher-priority one."""
    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: seen.call(pool, gate, "running"))
        await anyio.to_thread.run_sync(gate.started.wait)
        tg.start_soon(lambda: seen.call(pool, gate, "anonymous-1", priority=-1))
        await _wait_for(lambda: pool.statistics().queued == 1)
        tg.start_soon(lambda: seen.call(pool, gate, "anonymous-2", priority=-1))
        await _wait_for(lambda: pool.statistics().queued == 2)
        tg.start_soon(lambda: seen.call(pool, gate, "staff", priority=1))
        await _wait_for(lambda: pool.statistics().shed == 1)
        gate.release.set()
    shed = seen.results["anonymous-2"]
    assert isinstance(shed, Overloaded)
    assert shed.reason == "priority"
    assert gate.order == ["running", "staff", "anonymous-1"]
    assert pool.statistics().refusals["priority"] == 1
    pool.close()


async def test_keys_are_forgotten_after_their_calls() -> None:
    """After 500 distinct keys' calls finish, the pool holds no trace of any key."""
    pool = HashPool(2, nice=0)
    async with anyio.create_task_group() as tg:
        for n in range(500):
            tg.start_soon(lambda n=n: pool.run(abs, n, key=f"198.51.100.{n % 256}/{n}"))
    stats = pool.statistics()
    assert stats.active_keys == 0
    assert not pool._queue._held
    assert not pool._queue._levels
    pool.close()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(1.5, id="float"),
        pytest.param(["10.0.0.1"], id="list"),
        pytest.param(True, id="bool"),
        pytest.param({"ip": "10.0.0.1"}, id="dict"),
    ],
)
async def test_wrong_key_type_raises_type_error_and_queues_nothing(key: object) -> None:
    """key= of the wrong type raises TypeError at once, without the value, and admits nothing."""
    pool = HashPool(1, nice=0)
    with pytest.raises(TypeError, match="key must be") as caught:
        await pool.run(abs, 1, key=key)  # type: ignore[arg-type]
    assert "10.0.0.1" not in str(caught.value)
    assert pool.statistics().admitted == 0
    pool.close()


async def test_wrong_priority_raises() -> None:
    """priority= must be an int from -3 to 3."""
    pool = HashPool(1, nice=0)
    with pytest.raises(TypeError):
        await pool.run(abs, 1, priority="high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="priority must be between"):
        await pool.run(abs, 1, priority=9)
    pool.close()


def test_overloaded_reason_survives_pickling() -> None:
    """Overloaded keeps its reason through pickle (process pools, logging handlers)."""
    refused = Overloaded(1.5, estimated_wait=2.0, queued=3, reason="fair-share")
    copy = pickle.loads(pickle.dumps(refused))  # noqa: S301 - our own object
    assert (copy.reason, copy.retry_after, copy.queued) == ("fair-share", 1.5, 3)
    assert "fair-share" in str(copy)


async def test_prometheus_exports_active_keys_and_refusals_by_reason() -> None:
    """loopsafe_active_keys and loopsafe_refused_total{reason} appear; key values never do."""
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry, generate_latest

    from loopsafe.prometheus import register

    pool = HashPool(1, max_pending=2, max_queue_wait=None, nice=0, name="auth")
    registry = CollectorRegistry()
    register({"auth": pool}, registry=registry)
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        await _fill_with_flood(pool, gate, seen, tg)
        tg.start_soon(lambda: seen.call(pool, gate, "user", key="10.0.0.7"))
        await _wait_for(lambda: pool.statistics().shed == 1)
        await seen.call(pool, gate, "flood-4", key="10.66.0.1")
        text = generate_latest(registry).decode()
        gate.release.set()
    assert 'loopsafe_active_keys{pool="auth"} 2.0' in text
    assert 'loopsafe_refused_total{pool="auth",reason="fair-share"} 2.0' in text
    assert 'loopsafe_shed_total{pool="auth"} 1.0' in text
    assert "10.66.0.1" not in text
    assert "10.0.0.7" not in text
    pool.close()


async def test_a_newcomer_is_not_locked_out_when_every_worker_is_busy() -> None:
    """A key with nothing in the pool gets the next free worker even past max_queue_wait."""
    pool = HashPool(1, max_queue_wait=1.0, nice=0)
    pool._service.ewma = 10.0  # one call "takes" 10 s: any queue exceeds the 1 s budget
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: seen.call(pool, gate, "flood-1", key=FLOOD_KEY))
        await anyio.to_thread.run_sync(gate.started.wait)
        await seen.call(pool, gate, "flood-2", key=FLOOD_KEY)  # alone: the FIFO estimate
        tg.start_soon(lambda: seen.call(pool, gate, "user", key="10.0.0.7"))
        await _wait_for(lambda: pool.statistics().queued == 1)
        await seen.call(pool, gate, "flood-3", key=FLOOD_KEY)  # now over its share
        gate.release.set()
    alone, shared = seen.results["flood-2"], seen.results["flood-3"]
    assert isinstance(alone, Overloaded)
    assert alone.reason == "queue-wait"
    assert isinstance(shared, Overloaded)
    assert shared.reason == "fair-share"
    assert seen.results["user"] == "user"
    pool.close()


async def test_without_keys_a_busy_pool_refuses_by_the_estimate() -> None:
    """The same busy pool without keys: the FIFO estimate refuses the second call."""
    pool = HashPool(1, max_queue_wait=1.0, nice=0)
    pool._service.ewma = 10.0
    gate, seen = Gate(), Outcomes()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: seen.call(pool, gate, "first"))
        await anyio.to_thread.run_sync(gate.started.wait)
        await seen.call(pool, gate, "second")
        gate.release.set()
    refused = seen.results["second"]
    assert isinstance(refused, Overloaded)
    assert refused.reason == "queue-wait"
    pool.close()
