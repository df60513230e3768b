"""The engine: HashPool runs callables off the loop, admits, cancels, expires and counts."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time

import anyio
import pytest

from _support import Gate, pbkdf2, run_together, wait_until
from loopsafe import (
    HashPool,
    LoopLagMonitor,
    Overloaded,
    PoolClosed,
    PoolStatistics,
    usable_cpus,
)

pytestmark = pytest.mark.anyio


def _assert_consistent(stats: PoolStatistics) -> None:
    assert stats.admitted == (
        stats.completed + stats.cancelled + stats.expired + stats.running + stats.queued
    ), stats


class TestRun:
    """The basic contract of `HashPool.run`."""

    async def test_returns_result_from_a_worker_thread(self):
        """The callable runs on one of the pool's own threads and its value comes back."""
        pool = HashPool(2, name="t")
        name = await pool.run(lambda: threading.current_thread().name)
        assert name.startswith("t-worker-")
        assert await pool.run(pow, 2, 10) == 1024
        pool.close()

    async def test_exception_propagates_and_is_counted(self):
        """An exception raised by the callable is re-raised in the caller, type intact."""
        pool = HashPool(1)

        def boom() -> None:
            raise KeyError("x")

        with pytest.raises(KeyError):
            await pool.run(boom)
        stats = pool.statistics()
        assert (stats.completed, stats.failed) == (1, 1)
        pool.close()

    async def test_keyword_arguments_through_partial(self):
        """Keyword arguments travel with functools.partial, as with anyio.to_thread."""
        pool = HashPool(1)
        assert await pool.run(functools.partial(int, "ff", base=16)) == 255
        pool.close()

    async def test_contextvars_are_copied_into_the_worker(self):
        """The callable sees the caller's context variables (like asgiref and anyio)."""
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
        var.set("caller")
        pool = HashPool(1)
        assert await pool.run(var.get) == "caller"
        pool.close()

    async def test_invalid_arguments(self):
        """Bounds are validated with exceptions, not asserts."""
        with pytest.raises(ValueError):
            HashPool(0)
        with pytest.raises(TypeError):
            HashPool("2")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            HashPool(1, max_queue_wait=0)
        with pytest.raises(ValueError):
            HashPool(1, max_pending=0)
        pool = HashPool(1)
        with pytest.raises(ValueError):
            await pool.run(int, timeout=-1)
        pool.close()

    async def test_repr_never_shows_arguments(self):
        """Neither the pool's repr nor a call's repr shows what was passed."""
        pool = HashPool(1)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate, 1)
            await anyio.to_thread.run_sync(gate.started.wait)
            tg.start_soon(functools.partial(pool.run, hashlib.sha256, b"hunter2-marker"))
            await wait_until(lambda: pool.statistics().queued == 1)
            assert "hunter2-marker" not in repr(pool)
            assert all("hunter2" not in repr(call) for call in pool._queue)
            gate.release.set()
        pool.close()


def _nice_of_this_thread() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _nice_of_this_thread_and_a_child() -> tuple[int, int]:
    """The worker's nice value, and that of a thread it starts (as argon2 starts its lanes)."""
    seen: list[int] = []
    child = threading.Thread(target=lambda: seen.append(_nice_of_this_thread()))
    child.start()
    child.join()
    return _nice_of_this_thread(), seen[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
class TestWorkerPriority:
    """Workers yield the CPU to the event loop: their nice value is raised."""

    async def test_workers_and_their_threads_are_niced(self):
        """By default the worker and any thread it starts run at nice +10 (capped at 19)."""
        base = _nice_of_this_thread()
        pool = HashPool(1)
        assert pool.nice == 10
        assert await pool.run(_nice_of_this_thread_and_a_child) == (min(19, base + 10),) * 2
        assert _nice_of_this_thread() == base  # the loop's thread is untouched
        pool.close()

    async def test_nice_zero_leaves_priority_alone(self):
        """``nice=0`` keeps the workers at the process's own priority."""
        pool = HashPool(1, nice=0)
        assert await pool.run(_nice_of_this_thread) == _nice_of_this_thread()
        pool.close()

    async def test_nice_is_validated_and_shown(self):
        """Out-of-range or non-int values are refused; repr shows the setting."""
        with pytest.raises(ValueError, match="between 0 and 19"):
            HashPool(1, nice=20)
        with pytest.raises(ValueError, match="between 0 and 19"):
            HashPool(1, nice=-1)
        with pytest.raises(TypeError):
            HashPool(1, nice=True)
        assert "nice=3" in repr(HashPool(1, nice=3, name="shown"))


class TestLoopStaysFree:
    """The point of the library: the loop keeps ticking while hashes run."""

    async def test_loop_lag_stays_small_during_40_hashes(self):
        """40 concurrent PBKDF2 hashes; the ticker's worst lag is a small share of the hash time."""
        # No wait-based admission: every one of the 40 is admitted and runs
        # (a fresh pool with the default budget would refuse most of them).
        pool = HashPool(max_queue_wait=None)
        iterations = 100_000
        start = time.perf_counter()
        async with LoopLagMonitor() as lag, anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(pool.run, pbkdf2, iterations)
        elapsed = time.perf_counter() - start
        worst = lag.snapshot().max
        # Hashing on the loop would show one sample as long as a hash
        # (~elapsed / 40 * workers). Off the loop, lag is scheduling noise.
        # Generous bound: CI machines are shared and noisy.
        assert worst < max(0.1, elapsed / 10), (worst, elapsed)
        assert pool.statistics().completed == 40
        pool.close()


class TestAdmission:
    """Overload is refused at the door, with a retry estimate; admitted calls all finish."""

    async def test_wait_budget_rejects_surplus_with_retry_after(self):
        """A 1-worker pool with a 0.25 s budget admits what fits and refuses the rest."""
        pool = HashPool(1, max_queue_wait=0.25)
        await pool.run(time.sleep, 0.1)  # teaches the pool the service time
        results: list[object] = []

        async def one() -> None:
            try:
                results.append(await pool.run(time.sleep, 0.1))
            except Overloaded as exc:
                results.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
        rejected = [r for r in results if isinstance(r, Overloaded)]
        answered = [r for r in results if not isinstance(r, Overloaded)]
        assert 1 <= len(answered) <= 4
        assert len(rejected) == 10 - len(answered)
        assert all(exc.retry_after > 0 for exc in rejected)
        assert all("retry after" in str(exc) for exc in rejected)
        stats = pool.statistics()
        assert stats.rejected == len(rejected)
        assert stats.completed == 1 + len(answered)
        _assert_consistent(stats)
        pool.close()

    async def test_max_pending_bounds_the_queue(self):
        """With max_pending=2 only two calls may wait; the third is refused at once."""
        pool = HashPool(1, max_pending=2, max_queue_wait=None)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate, 0)
            await anyio.to_thread.run_sync(gate.started.wait)
            for i in (1, 2):
                tg.start_soon(pool.run, gate, i)
            await wait_until(lambda: pool.statistics().queued == 2)
            with pytest.raises(Overloaded) as info:
                await pool.run(gate, 9)
            assert info.value.queued == 2
            assert info.value.retry_after > 0
            gate.release.set()
        assert gate.calls == 3
        pool.close()

    async def test_check_without_admitting(self):
        """check_admission raises when run would refuse, admits nothing, counts the refusal."""
        pool = HashPool(1, max_pending=1, max_queue_wait=None)
        pool.check_admission()
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait)
            tg.start_soon(pool.run, gate)
            await wait_until(lambda: pool.statistics().queued == 1)
            events: list[str] = []
            pool.add_listener(lambda event, _seconds: events.append(event))
            with pytest.raises(Overloaded):
                pool.check_admission(count=False)
            assert pool.statistics().rejected == 0  # a pure look counts nothing
            assert events == []
            with pytest.raises(Overloaded):
                pool.check_admission()
            assert pool.statistics().rejected == 1  # the client's 503 is a refusal
            assert events == ["rejected"]
            with pytest.raises(Overloaded):
                await pool.run(gate)
            assert pool.statistics().rejected == 2
            assert events == ["rejected", "rejected"]
            gate.release.set()
        assert pool.statistics().admitted == 2  # neither check admitted anything
        pool.close()

    def test_check_admission_refuses_a_non_bool_count(self):
        """check_admission(count=...) takes a bool only, and says so."""
        pool = HashPool(1)
        with pytest.raises(TypeError, match="count must be a bool"):
            pool.check_admission(count=1)  # type: ignore[arg-type]
        pool.close()


class TestReconfigure:
    """Writable bounds, like anyio's ``total_tokens``: the pool changes in place."""

    async def test_raising_max_workers_starts_queued_calls(self):
        """Raising max_workers on a busy pool starts the queued calls at once."""
        pool = HashPool(1, max_queue_wait=None)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(pool.run, gate, i)
            await wait_until(lambda: pool.statistics().queued == 2)
            pool.max_workers = 3
            await wait_until(lambda: pool.statistics().running == 3)
            gate.release.set()
        stats = pool.statistics()
        assert (stats.max_workers, stats.completed, stats.threads <= 3) == (3, 3, True)
        pool.close()

    async def test_lowering_max_workers_lets_running_calls_finish_and_starts_no_more(self):
        """Lowered to 1 with 2 running: both finish, then at most 1 runs at a time."""
        pool = HashPool(2, max_queue_wait=None)
        gate = Gate()
        peak = 0
        lock = threading.Lock()
        running = 0

        def counted(value: int) -> int:
            nonlocal peak, running
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                return gate(value)
            finally:
                with lock:
                    running -= 1

        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(pool.run, gate, i)
            await wait_until(lambda: pool.statistics().running == 2)
            pool.max_workers = 1
            for i in range(4):
                tg.start_soon(pool.run, counted, i)
            await wait_until(lambda: pool.statistics().queued == 4)
            gate.release.set()
        assert peak == 1
        stats = pool.statistics()
        assert (stats.completed, stats.running, stats.queued) == (6, 0, 0)
        await wait_until(lambda: pool.statistics().threads <= 1)
        pool.close()

    @pytest.mark.parametrize(
        ("attribute", "value", "error"),
        [
            pytest.param("max_workers", 0, ValueError, id="workers-zero"),
            pytest.param("max_workers", 1.5, TypeError, id="workers-float"),
            pytest.param("max_queue_wait", -1, ValueError, id="wait-negative"),
            pytest.param("max_queue_wait", float("nan"), ValueError, id="wait-nan"),
            pytest.param("max_queue_wait", "1", TypeError, id="wait-str"),
            pytest.param("max_pending", 0, ValueError, id="pending-zero"),
            pytest.param("max_pending", True, TypeError, id="pending-bool"),
        ],
    )
    def test_bad_values_are_refused_and_change_nothing(self, attribute, value, error):
        """A bad bound raises and leaves the pool as it was."""
        pool = HashPool(2, max_queue_wait=1.0, max_pending=5)
        before = (pool.max_workers, pool.max_queue_wait, pool.max_pending)
        with pytest.raises(error):
            setattr(pool, attribute, value)
        assert (pool.max_workers, pool.max_queue_wait, pool.max_pending) == before
        pool.close()

    def test_none_workers_means_the_usable_cpus(self):
        """max_workers = None is the same default as at construction."""
        pool = HashPool(1)
        pool.max_workers = None
        assert pool.max_workers == usable_cpus()
        pool.close()


class TestCancellation:
    """A caller that gives up never costs a hash that has not started."""

    async def test_cancelled_before_start_never_runs(self):
        """Five queued calls cancelled while the only worker is busy: none of them runs."""
        pool = HashPool(1, max_queue_wait=None)
        blocker = Gate()
        counted = Gate()
        counted.release.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, blocker)
            await anyio.to_thread.run_sync(blocker.started.wait)
            with anyio.move_on_after(0.05):
                async with anyio.create_task_group() as inner:
                    for i in range(5):
                        inner.start_soon(pool.run, counted, i)
            assert pool.statistics().queued == 0
            blocker.release.set()
        await pool.run(int)  # a call that runs after them proves the queue moved on
        assert counted.calls == 0
        stats = pool.statistics()
        assert stats.cancelled == 5
        assert stats.abandoned == 0
        _assert_consistent(stats)
        pool.close()

    async def test_cancelled_while_running_returns_at_once(self):
        """Cancelling a running call returns immediately; the worker finishes and drops it."""
        pool = HashPool(1)
        gate = Gate()
        start = time.perf_counter()
        with anyio.move_on_after(0.05):
            await pool.run(gate)
        assert time.perf_counter() - start < 1.0
        assert pool.statistics().running == 1
        gate.release.set()
        await wait_until(lambda: pool.statistics().running == 0)
        stats = pool.statistics()
        assert (stats.cancelled, stats.abandoned, stats.completed) == (1, 1, 0)
        _assert_consistent(stats)
        pool.close()


class TestDeadlines:
    """timeout= bounds the wait; a queued call past its deadline is dropped."""

    async def test_queued_call_expires_and_never_runs(self):
        """A call stuck behind a busy worker raises TimeoutError and is never started."""
        pool = HashPool(1, max_queue_wait=None)
        blocker = Gate()
        counted = Gate()
        counted.release.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, blocker)
            await anyio.to_thread.run_sync(blocker.started.wait)
            with pytest.raises(TimeoutError):
                await pool.run(counted, timeout=0.05)
            blocker.release.set()
        assert counted.calls == 0
        stats = pool.statistics()
        assert stats.expired == 1
        _assert_consistent(stats)
        pool.close()

    async def test_running_call_times_out_promptly(self):
        """A running call past its deadline answers TimeoutError at once; its result is dropped."""
        pool = HashPool(1)
        gate = Gate()
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            await pool.run(gate, timeout=0.05)
        assert time.perf_counter() - start < 1.0
        gate.release.set()
        await wait_until(lambda: pool.statistics().running == 0)
        stats = pool.statistics()
        assert (stats.expired, stats.abandoned) == (1, 1)
        pool.close()


class TestClose:
    """Shutdown answers everyone and refuses newcomers."""

    async def test_close_answers_queued_callers(self):
        """Queued callers get PoolClosed; the running one still gets its result."""
        pool = HashPool(1, max_queue_wait=None)
        gate = Gate()
        outcomes: list[object] = []

        async def one(i: int) -> None:
            try:
                outcomes.append(await pool.run(gate, i))
            except PoolClosed as exc:
                outcomes.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(one, i)
            await wait_until(lambda: pool.statistics().queued == 3)
            pool.close()
            gate.release.set()
        assert sum(isinstance(o, PoolClosed) for o in outcomes) == 3
        assert len([o for o in outcomes if isinstance(o, int)]) == 1
        with pytest.raises(PoolClosed):
            await pool.run(int)
        _assert_consistent(pool.statistics())

    async def test_aclose_waits_for_running_calls(self):
        """aclose returns only after the running call finished; threads are gone."""
        pool = HashPool(2)
        await pool.run(int)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait)
            threading.Timer(0.05, gate.release.set).start()
            await pool.aclose()
            assert gate.release.is_set()
        assert pool.statistics().threads == 0

    async def test_async_context_manager(self):
        """``async with HashPool()`` closes the pool on exit."""
        async with HashPool(1) as pool:
            assert await pool.run(abs, -3) == 3
        assert pool.closed


class TestExecutor:
    """A supplied executor does the work; the pool still admits and counts."""

    async def test_process_pool_executor(self):
        """Calls run in another process through a ProcessPoolExecutor."""
        with concurrent.futures.ProcessPoolExecutor(1) as executor:
            pool = HashPool(1, executor=executor)
            pid = await pool.run(os.getpid)
            assert pid != os.getpid()
            assert await pool.run(pbkdf2, 1000) == pbkdf2(1000)
            assert pool.statistics().completed == 2
            pool.close()


def test_many_event_loops_share_one_pool():
    """Repeated asyncio.run and loops in several threads at once all use one pool."""
    pool = HashPool(2)
    for i in range(50):
        assert asyncio.run(pool.run(abs, -i)) == i

    errors: list[BaseException] = []

    def in_thread(n: int) -> None:
        async def main() -> None:
            results = await asyncio.gather(*(pool.run(abs, -k) for k in range(20)))
            assert results == list(range(20))

        try:
            for _ in range(n):
                asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(5,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stats = pool.statistics()
    assert stats.completed == 50 + 4 * 5 * 20
    assert stats.threads <= 2
    pool.close()


def test_thread_safety_under_tiny_switch_interval():
    """Eight threads released together by a Barrier hammer one pool; every count adds up."""
    pool = HashPool(3, max_queue_wait=None)

    def hammer(_: int) -> None:
        async def main() -> None:
            results = await asyncio.gather(*(pool.run(pow, k, 2) for k in range(25)))
            assert results == [k * k for k in range(25)]

        asyncio.run(main())

    run_together(hammer)
    stats = pool.statistics()
    assert stats.completed == 200
    _assert_consistent(stats)
    pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_pool_survives_fork():
    """A pool used before fork works in the child (fresh workers) and still in the parent."""
    pool = HashPool(2)
    assert asyncio.run(pool.run(abs, -1)) == 1
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            ok = asyncio.run(pool.run(pbkdf2, 1000)) == pbkdf2(1000)
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert asyncio.run(pool.run(abs, -2)) == 2
    pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_closed_pool_stays_closed_after_fork_and_the_others_work():
    """After fork a closed pool is still closed in the child, and every other pool works."""
    closed = HashPool(1)
    closed.close()
    pool = HashPool(1)
    assert asyncio.run(pool.run(abs, -1)) == 1
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            works = asyncio.run(pool.run(abs, -3)) == 3
            code = 0 if works and closed.closed else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pool.close()


def test_interpreter_exit_does_not_hang():
    """A process that exits with calls running and queued ends promptly."""
    script = textwrap.dedent(
        """
        import asyncio, time
        from loopsafe import HashPool

        pool = HashPool(1, max_queue_wait=None)

        async def main():
            tasks = [asyncio.ensure_future(pool.run(time.sleep, 30)) for _ in range(5)]
            await asyncio.sleep(0.1)
            print("leaving", pool.statistics().running, pool.statistics().queued, flush=True)

        asyncio.run(main())
        """
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20, check=True
    )
    assert time.perf_counter() - start < 15
    assert "leaving 1 4" in out.stdout


class TestListeners:
    """Metrics exporters see every ending, never arguments."""

    async def test_events_reach_listeners_and_can_be_removed(self):
        """completed, failed, rejected, cancelled and expired events are emitted with durations."""
        pool = HashPool(1, max_pending=1, max_queue_wait=None)
        events: list[tuple[str, float]] = []
        remove = pool.add_listener(lambda event, seconds: events.append((event, seconds)))
        await pool.run(time.sleep, 0.01)
        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait)
            with anyio.move_on_after(0.02):
                await pool.run(int)  # queued, then cancelled
            with pytest.raises(TimeoutError):
                await pool.run(int, timeout=0.02)  # queued, then expired
            tg.start_soon(pool.run, gate)
            await wait_until(lambda: pool.statistics().queued == 1)
            with pytest.raises(Overloaded):
                await pool.run(int)
            gate.release.set()
        await wait_until(lambda: len(events) >= 7)
        names = [name for name, _ in events]
        assert names.count("completed") == 3
        assert {"failed", "cancelled", "expired", "rejected"} <= set(names)
        assert dict(events)["completed"] > 0
        remove()
        await pool.run(int)
        assert len(events) == 7
        pool.close()

    async def test_a_call_is_in_the_metrics_when_its_caller_has_the_result(self):
        """Listeners hear of a call before its caller is answered (no race with a scrape)."""
        pool = HashPool(2)
        events: list[str] = []

        def slow_exporter(event: str, seconds: float) -> None:
            time.sleep(0.002)  # an exporter taking its time must still be done first
            events.append(event)

        pool.add_listener(slow_exporter)
        for done in range(1, 21):
            await pool.run(int)
            assert events.count("completed") == done
        with pytest.raises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        assert events[-1] == "failed"
        pool.close()

    async def test_a_broken_listener_does_not_break_calls(self, caplog):
        """A listener that raises is logged and ignored; the caller still gets its result."""
        pool = HashPool(1)

        def broken(event: str, seconds: float) -> None:
            raise RuntimeError("exporter down")

        pool.add_listener(broken)
        assert await pool.run(abs, -5) == 5
        await wait_until(lambda: any("listener" in r.message for r in caplog.records))
        pool.close()


class TestBind:
    """`loopsafe.bind`: keyword arguments through `HashPool.run` without showing them."""

    async def test_binds_positional_and_keyword_arguments(self):
        """The bound call gets every argument, and runs on the pool like any callable."""
        import loopsafe

        pool = HashPool(1)
        bound = loopsafe.bind(int, "ff", base=16)
        assert await pool.run(bound) == 255
        pool.close()

    def test_repr_hides_every_argument(self):
        """The repr names the callable and counts the arguments; no value appears."""
        import loopsafe

        secret = "correct horse battery staple"
        bound = loopsafe.bind(hashlib.sha256, secret.encode(), usedforsecurity=True)
        text = repr(bound)
        assert "sha256" in text
        assert "2 arguments" in text
        assert secret not in text
        assert "correct" not in str(bound)

    def test_refuses_what_is_not_callable(self):
        """bind(non-callable) is a TypeError naming the type."""
        import loopsafe

        with pytest.raises(TypeError, match="str"):
            loopsafe.bind("not callable")  # type: ignore[arg-type]
