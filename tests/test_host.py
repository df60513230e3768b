"""The host budget: slots shared across processes, memory, cold starts, and no hopeless start."""

from __future__ import annotations

import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from _support import REPO, child_env, run_child
from loopsafe import (
    HashPool,
    Overloaded,
    PasswordHash,
    PBKDF2Hasher,
    configure,
    default_pool,
    profiles,
)
from loopsafe._host import HostSlots, default_host_key
from loopsafe.exceptions import HostBudgetUnavailable

#: PBKDF2 iteration counts whose cost nothing has estimated yet.
_UNMEASURED_ITERATIONS = itertools.count(54_321)

if TYPE_CHECKING:
    from pathlib import Path

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
fork_in_threads = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private runtime directory for this test's host budgets (children inherit it)."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(path))
    return path


def _child(script: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=REPO,
    )


def _wait_until(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    pytest.fail("condition not reached in time")


# -- the slots --------------------------------------------------------------------------


@pytest.mark.usefixtures("runtime_dir")
class TestSlots:
    def test_threads_of_one_process_never_exceed_the_limit(self):
        """Eight threads taking and releasing two slots: never more than two held at once."""
        slots = HostSlots(2, "threads")
        inside = 0
        peak = 0
        lock = threading.Lock()

        def work() -> None:
            nonlocal inside, peak
            for _ in range(5):
                slot = slots.acquire()
                assert slot is not None
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.002)
                with lock:
                    inside -= 1
                slots.release(slot)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert peak == 2
        assert slots.usage().held == 0

    def test_usage_counts_slots_and_declared_memory(self):
        """usage() reports slots held and bytes declared, here and by another holder."""
        mine = HostSlots(3, "usage")
        sibling = HostSlots(3, "usage")  # own descriptors: behaves like another process
        a = mine.acquire(100)
        b = sibling.acquire(250)
        usage = mine.usage()
        assert (usage.held, usage.held_here, usage.memory) == (2, 1, 350)
        mine.release(a)
        sibling.release(b)  # type: ignore[arg-type]
        assert mine.usage().held == 0

    def test_memory_that_does_not_fit_waits(self):
        """A slot is free but the memory is not: try_acquire refuses until the holder leaves."""
        slots = HostSlots(4, "memory")
        first = slots.acquire(60, max_memory=100)
        assert first is not None
        assert slots.try_acquire(60, max_memory=100) is None
        slots.release(first)
        second = slots.try_acquire(60, max_memory=100)
        assert second is not None
        slots.release(second)

    def test_a_hash_larger_than_the_budget_runs_alone(self):
        """A call declaring more than max_memory runs when nothing else does, never never."""
        slots = HostSlots(2, "alone")
        slot = slots.try_acquire(500, max_memory=100)
        assert slot is not None
        assert slots.try_acquire(1, max_memory=100) is None
        slots.release(slot)

    def test_acquire_gives_up_when_asked(self):
        """A waiting acquire returns None once give_up() is true (the caller left)."""
        slots = HostSlots(1, "give-up")
        held = slots.acquire()
        start = time.monotonic()
        assert slots.acquire(give_up=lambda: time.monotonic() - start > 0.1) is None
        slots.release(held)  # type: ignore[arg-type]

    def test_default_key_names_the_user_and_program(self):
        """The default key is '<uid>-<program>', safe as a file name."""
        key = default_host_key()
        assert key.startswith(f"{os.getuid()}-")
        assert "/" not in key


@pytest.mark.usefixtures("runtime_dir")
class TestBadInput:
    @pytest.mark.parametrize(
        ("limit", "error"),
        [
            pytest.param(0, ValueError, id="zero"),
            pytest.param(-2, ValueError, id="negative"),
            pytest.param(1.5, TypeError, id="float"),
            pytest.param("banana", ValueError, id="word"),
            pytest.param(True, TypeError, id="bool"),
        ],
    )
    def test_bad_host_limit_names_the_setting(self, limit, error):
        """host_limit 0, negative, non-integer: a clear error naming host_limit."""
        with pytest.raises(error, match="host_limit"):
            HashPool(host_limit=limit)

    def test_bad_host_key(self):
        """A key with a slash (a path) is refused."""
        with pytest.raises(ValueError, match="host_key"):
            HashPool(host_limit=1, host_key="../x")

    def test_env_banana_names_the_variable(self, monkeypatch):
        """LOOPSAFE_HOST_LIMIT=banana: a ValueError naming the variable."""
        monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "banana")
        with pytest.raises(ValueError, match="LOOPSAFE_HOST_LIMIT"):
            configure()

    def test_env_auto_is_the_usable_cpus(self, monkeypatch):
        """LOOPSAFE_HOST_LIMIT=auto gives the default pool a host budget of the usable CPUs."""
        monkeypatch.setenv("LOOPSAFE_HOST_LIMIT", "auto")
        try:
            pool = configure()
            assert pool.host_limit == loopsafe_usable_cpus()
            assert default_pool() is pool
        finally:
            monkeypatch.delenv("LOOPSAFE_HOST_LIMIT")
            configure()
        assert default_pool().host_limit is None

    def test_unwritable_runtime_dir_is_a_clear_error(self, tmp_path, monkeypatch):
        """A runtime directory that cannot be made: HostBudgetUnavailable naming the way out."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(blocker / "sub"))
        with pytest.raises(HostBudgetUnavailable, match="LOOPSAFE_RUNTIME_DIR"):
            HashPool(host_limit=2)

    def test_runtime_dir_writable_by_others_is_refused(self, tmp_path, monkeypatch):
        """A directory others may write to could be used to fake the budget: refused."""
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(shared))
        with pytest.raises(HostBudgetUnavailable, match="writable by other users"):
            HashPool(host_limit=2)

    def test_created_directory_is_private(self, tmp_path, monkeypatch):
        """The directory loopsafe makes for a key is mode 0700."""
        monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(tmp_path / "new"))
        slots = HostSlots(1, "private")
        assert stat.S_IMODE(slots.path.stat().st_mode) == 0o700


def loopsafe_usable_cpus() -> int:
    """The usable CPUs, as loopsafe counts them."""
    from loopsafe import usable_cpus

    return usable_cpus()


# -- processes: spawned, forked, killed ------------------------------------------------------

_HOLDER = """
import sys, time
from loopsafe._host import HostSlots
slots = HostSlots(int(sys.argv[1]), sys.argv[2])
slot = slots.acquire(int(sys.argv[3]))
print("held", slot, flush=True)
time.sleep(60)
"""


@pytest.mark.usefixtures("runtime_dir")
class TestProcesses:
    def test_spawned_processes_share_the_limit(self):
        """Three fresh interpreters, each a pool with host_limit=1: their calls never overlap."""
        script = textwrap.dedent(
            """
            import asyncio, json, time
            from loopsafe import HashPool

            def work():
                start = time.monotonic()
                time.sleep(0.15)
                return (start, time.monotonic())

            async def main():
                pool = HashPool(2, host_limit=1, host_key="spawned", max_queue_wait=None)
                async with pool:
                    print(json.dumps(await asyncio.gather(pool.run(work), pool.run(work))))

            asyncio.run(main())
            """
        )
        children = [_child(script) for _ in range(3)]
        spans = []
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            spans.extend(json.loads(out))
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.005  # CLOCK_MONOTONIC is system-wide on Linux
        assert len(spans) == 6

    def test_sigkill_releases_the_slot(self):
        """A process killed with SIGKILL while holding a slot frees it at once."""
        slots = HostSlots(1, "killed")
        with subprocess.Popen(
            [sys.executable, "-c", _HOLDER, "1", "killed", "1000"],
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=REPO,
        ) as holder:
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().startswith("held")
                usage = slots.usage()
                assert (usage.held, usage.memory) == (1, 1000)
                assert slots.try_acquire() is None
            finally:
                holder.send_signal(signal.SIGKILL)
                holder.wait(30)
        slot = slots.acquire(give_up=lambda: False)
        assert slot is not None
        slots.release(slot)

    @needs_fork
    @fork_in_threads
    def test_forked_child_does_not_hold_or_free_its_parents_slot(self):
        """After fork the child sees the parent's slot as taken, and its exit does not free it."""
        slots = HostSlots(1, "forked")
        slot = slots.acquire()
        assert slot is not None
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            usage = slots.usage()
            ok = usage.held == 1 and usage.held_here == 0 and slots.try_acquire() is None
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        other = HostSlots(1, "forked")  # another holder: the parent's slot is still held
        assert other.try_acquire() is None
        slots.release(slot)
        again = other.try_acquire()
        assert again is not None
        other.release(again)

    @needs_fork
    @fork_in_threads
    def test_forked_child_pool_takes_a_slot_of_its_own(self):
        """gunicorn --preload: a pool used before fork works in the child under the same budget."""
        pool = HashPool(1, host_limit=2, host_key="preload")

        async def once() -> int:
            return await pool.run(os.getpid)

        anyio.run(once)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 0 if anyio.run(once) == os.getpid() else 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert anyio.run(once) == os.getpid()
        assert pool.statistics().host_held == 0
        pool.close()

    def test_spawned_multiprocessing_worker_uses_the_env_limit(self):
        """A child started with LOOPSAFE_HOST_LIMIT=1 gets a default pool with that budget."""
        env_script = (
            "import os; os.environ['LOOPSAFE_HOST_LIMIT'] = '1'\n"
            "from loopsafe import default_pool\n"
            "p = default_pool(); print(p.host_limit, p.host_key)"
        )
        result = run_child(env_script, timeout=60)
        assert result.returncode == 0, result.stderr
        limit, key = result.stdout.split()
        assert limit == "1"
        assert key.endswith("-c") or key.startswith(str(os.getuid()))


# -- the pool: memory, admission, cold start, no hopeless start -----------------------------


@pytest.mark.anyio
@pytest.mark.usefixtures("runtime_dir")
class TestPoolBudget:
    async def test_max_memory_bounds_calls_running_together(self):
        """Calls declaring 60 bytes against max_memory=100 never run two at a time."""
        inside = 0
        peak = 0
        lock = threading.Lock()

        def work() -> None:
            nonlocal inside, peak
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.01)
            with lock:
                inside -= 1

        async with HashPool(4, max_memory=100, max_queue_wait=None) as pool:
            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(lambda: pool.run(work, memory=60))
            assert pool.statistics().memory_in_use == 0
        assert peak == 1

    async def test_host_memory_is_shared(self):
        """With a host budget, memory another holder declared counts against max_memory."""
        sibling = HostSlots(4, "shared-memory")
        held = sibling.acquire(80)
        async with HashPool(
            2, host_limit=4, host_key="shared-memory", max_memory=100, max_queue_wait=None
        ) as pool:
            with anyio.move_on_after(0.2):
                await pool.run(time.sleep, 0, memory=30)
                pytest.fail("ran although 80 + 30 > 100 bytes")
            sibling.release(held)  # type: ignore[arg-type]
            await pool.run(time.sleep, 0, memory=30)
            assert pool.statistics().abandoned == 0

    async def test_siblings_holding_every_slot_count_in_the_wait(self):
        """A process whose siblings hold every host slot estimates a wait from them."""
        sibling = HostSlots(2, "siblings")
        held = [sibling.acquire(), sibling.acquire()]
        async with HashPool(2, host_limit=2, host_key="siblings", max_queue_wait=0.1) as pool:
            with pytest.raises(Overloaded) as refused:
                await pool.run(time.sleep, 0, cost=0.5)
            assert refused.value.estimated_wait > 0.1
            assert pool.statistics().host_held == 2
            for slot in held:
                sibling.release(slot)  # type: ignore[arg-type]
            await anyio.sleep(0.01)  # admission reads the host at most every 2 ms
            await pool.run(time.sleep, 0, cost=0.5)

    async def test_cold_pool_sheds_a_burst_by_the_cost_prior(self):
        """A pool that has finished nothing refuses most of a burst of 60 given a cost."""
        release = threading.Event()
        async with HashPool(2, max_queue_wait=1.0) as pool:
            refused = 0

            async def one() -> None:
                nonlocal refused
                try:
                    await pool.run(release.wait, 5, cost=0.5)
                except Overloaded:
                    refused += 1

            async with anyio.create_task_group() as tg:
                for _ in range(60):
                    tg.start_soon(one)
                await anyio.sleep(0.2)
                release.set()
        assert refused >= 50

    async def test_facade_estimate_is_never_measured_on_the_loop(self):
        """PasswordHash.estimate_cost() measures off the loop only; on it, it gives the cache."""
        # Parameters no other test (nor another loop's run of this one) has measured.
        ph = PasswordHash([PBKDF2Hasher(iterations=next(_UNMEASURED_ITERATIONS))])
        assert ph.estimate_cost() is None  # on the loop: nothing measured, nothing cached
        estimate = await anyio.to_thread.run_sync(ph.estimate_cost)
        assert estimate is not None
        assert estimate > 0
        assert ph.estimate_cost() == estimate  # on the loop again: the cached figure

    async def test_facade_declares_its_memory(self):
        """PasswordHash declares the preferred hasher's memory to the pool."""
        ph = PasswordHash.recommended(profile=profiles.CHEAP)
        assert ph.preferred.memory_per_hash() == ph.preferred.params["memory_cost"] * 1024

    async def test_no_hopeless_start(self):
        """A queued call with less time left than a hash takes expires at dequeue and never runs."""
        ran = 0

        def work() -> None:
            nonlocal ran
            ran += 1
            time.sleep(0.2)

        async with HashPool(1, max_queue_wait=None) as pool:
            await pool.run(work)  # the pool now knows a call takes ~0.2 s
            results: list[str] = []

            async def one(timeout: float) -> None:
                try:
                    await pool.run(work, timeout=timeout)
                    results.append("ok")
                except TimeoutError:
                    results.append("timeout")

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, 1.0)
                await anyio.sleep(0.01)
                tg.start_soon(one, 0.3)  # starts after ~0.19 s with ~0.11 s left
            stats = pool.statistics()
        assert sorted(results) == ["ok", "timeout"]
        assert ran == 2  # the warm-up and the first: the hopeless one never ran
        assert stats.abandoned == 0


@pytest.mark.anyio
@pytest.mark.usefixtures("runtime_dir")
async def test_siblings_queues_count_in_the_wait():
    """Calls waiting in a sibling process's queue make admission here estimate a wait."""
    sibling = HostSlots(2, "demand")
    sibling.publish_demand(6)
    async with HashPool(2, host_limit=2, host_key="demand", max_queue_wait=1.0) as pool:
        with pytest.raises(Overloaded) as refused:
            await pool.run(time.sleep, 0, cost=0.5)
        assert refused.value.estimated_wait == pytest.approx(0.5 * (6 - 2 + 1) / 2)
        sibling.publish_demand(0)
        sibling._live_records = (-1.0, ())
        await anyio.sleep(0.01)
        await pool.run(time.sleep, 0, cost=0.5)


@pytest.mark.usefixtures("runtime_dir")
def test_a_dead_process_demand_stops_counting():
    """A process killed with its calls waiting: its published demand no longer counts."""
    script = (
        "import sys, time\n"
        "from loopsafe._host import HostSlots\n"
        "HostSlots(2, 'dead-demand').publish_demand(9)\n"
        "print('published', flush=True)\n"
        "time.sleep(60)\n"
    )
    slots = HostSlots(2, "dead-demand")
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().startswith("published")
            assert slots.others_demand() == 9
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(30)
    slots._live_records = (-1.0, ())  # skip the half-second liveness cache
    assert slots.others_demand() == 0


@pytest.mark.usefixtures("runtime_dir")
def test_prometheus_exports_host_slots_and_memory():
    """loopsafe_host_slots_held and loopsafe_memory_in_use_bytes show the host's budget."""
    from prometheus_client import CollectorRegistry, generate_latest

    from loopsafe.prometheus import register

    sibling = HostSlots(2, "metrics")
    held = sibling.acquire(4096)
    pool = HashPool(1, host_limit=2, host_key="metrics", name="hosted")
    registry = CollectorRegistry()
    collector = register({"hosted": pool}, registry=registry)
    try:
        text = generate_latest(registry).decode()
        assert 'loopsafe_host_slots_held{pool="hosted"} 1.0' in text
        assert 'loopsafe_memory_in_use_bytes{pool="hosted"} 4096.0' in text
    finally:
        registry.unregister(collector)
        collector.close()
        sibling.release(held)  # type: ignore[arg-type]
        pool.close()


def test_default_memory_budget_is_the_containers_share(monkeypatch):
    """max_memory=None applies half the cgroup memory limit (issue 15's budget) where one is set."""
    from loopsafe import _limits

    pool = HashPool(1)
    monkeypatch.setattr(_limits, "hashing_memory_budget", lambda: 512 * 2**20)
    assert pool.max_memory is None
    assert pool.memory_budget == 512 * 2**20
    assert pool.statistics().max_memory == 512 * 2**20
    monkeypatch.setattr(_limits, "hashing_memory_budget", lambda: None)
    assert pool.memory_budget is None
    assert HashPool(1, max_memory=100).memory_budget == 100
    pool.close()


@pytest.mark.parametrize(
    ("name", "expects_estimate"),
    [
        pytest.param("pbkdf2_sha256", True, id="pbkdf2"),
        pytest.param("argon2", True, id="argon2"),
        pytest.param("bcrypt_sha256", True, id="bcrypt"),
        pytest.param("scrypt", True, id="scrypt"),
        pytest.param("md5", False, id="md5-too-cheap"),
    ],
)
def test_estimated_seconds_is_measured_once(name, expects_estimate):
    """Each slow hasher estimates its cost from a scaled-down hash, once; MD5 has none."""
    from _support import cheap_hashers

    hasher = next(h for h in cheap_hashers() if h.algorithm == name)
    first = hasher.estimated_seconds()
    assert (first is not None) == expects_estimate
    assert hasher.cached_estimate() == first
    assert hasher.estimated_seconds() == first  # cached, not measured again
    if first is not None:
        assert 0 < first < 5


@pytest.mark.usefixtures("runtime_dir")
def test_a_recycled_worker_starts_from_its_siblings_estimate(monkeypatch):
    """A new pool takes the service time a sibling published recently, not a stale one."""
    from loopsafe import _host

    sibling = HostSlots(2, "prior")
    sibling.publish_service_time(0.4)
    assert HashPool(1, host_limit=2, host_key="prior")._service.estimate() == 0.4
    later = time.time() + _host._SERVICE_FRESH + 1
    monkeypatch.setattr(_host.time, "time", lambda: later)
    assert sibling.service_time() is None
