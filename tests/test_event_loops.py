"""asyncio, uvloop and trio: HashPool.run and PasswordHash's async twins behave the same on each.

Every async test here runs once per backend (the ``anyio_backend`` fixture in
conftest). loopsafe waits natively on each loop (``call_soon_threadsafe`` on
asyncio and uvloop, ``TrioToken.run_sync_soon`` on trio), so anyio is only the
test runner; `test_native_runners_without_anyio` proves that.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time

import anyio
import pytest
import sniffio

from _support import Gate, pbkdf2, wait_until
from loopsafe import HashPool, Overloaded, PasswordHash, PBKDF2Hasher, PoolClosed, profiles

pytestmark = pytest.mark.anyio

BACKENDS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def backend_name(anyio_backend) -> str:
    """asyncio, uvloop or trio, from the fixture's (name, options) pair."""
    name, options = anyio_backend
    return "uvloop" if options.get("use_uvloop") else name


@pytest.fixture
def ph(pool):
    """The cheap profile on the private pool."""
    return PasswordHash(profiles.CHEAP.hashers(), pool=pool)


async def test_the_loop_is_the_one_asked_for(anyio_backend):
    """Each parameter really runs its own event loop implementation."""
    name = backend_name(anyio_backend)
    assert sniffio.current_async_library() == ("trio" if name == "trio" else "asyncio")
    if name == "uvloop":
        import uvloop

        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    elif name == "asyncio":
        assert type(asyncio.get_running_loop()).__module__.startswith("asyncio")


class TestRun:
    """HashPool.run: results, exceptions, timeouts, cancellation, admission, closing."""

    async def test_result_from_a_worker_thread(self, pool):
        """Results come back from the pool's own threads, never the loop's."""
        name = await pool.run(lambda: threading.current_thread().name)
        assert name.startswith(f"{pool.name}-worker-")
        assert await pool.run(pbkdf2, 1000, b"pw") == pbkdf2(1000, b"pw")

    async def test_keywords_through_partial(self, pool):
        """Keyword arguments go through functools.partial."""
        assert await pool.run(functools.partial(int, "ff", base=16)) == 255

    async def test_exception_type_and_message(self, pool):
        """The callable's exception is re-raised with its type and message."""

        def boom() -> None:
            raise LookupError("no such user")

        with pytest.raises(LookupError, match="no such user"):
            await pool.run(boom)
        assert pool.statistics().failed == 1

    async def test_timeout_while_running(self, pool):
        """A running call past its timeout raises TimeoutError promptly; the worker finishes."""
        gate = Gate()
        await pool.run(int)  # a worker is up and idle, so the gate starts at once
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            await pool.run(gate, timeout=0.5)
        assert time.perf_counter() - start < 5
        assert gate.calls == 1
        gate.release.set()
        await wait_until(lambda: pool.statistics().abandoned == 1)
        assert pool.statistics().expired == 1

    async def test_timeout_while_queued_never_runs(self):
        """A call still queued at its deadline expires and never runs."""
        single = HashPool(1)
        gate, queued = Gate(), Gate()
        queued.release.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(single.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            with pytest.raises(TimeoutError):
                await single.run(queued, timeout=0.05)
            gate.release.set()
        assert queued.calls == 0
        assert single.statistics().expired == 1
        single.close()

    async def test_cancellation_returns_at_once(self, pool):
        """Cancelling the caller (a cancel scope) returns promptly; the call counts as abandoned."""
        gate = Gate()
        scope = anyio.CancelScope()
        returned: list[float] = []

        async def call() -> None:
            with scope:
                await pool.run(gate)
            returned.append(time.perf_counter())

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            cancelled_at = time.perf_counter()
            scope.cancel()
        assert scope.cancelled_caught
        assert returned[0] - cancelled_at < 5
        gate.release.set()
        await wait_until(lambda: pool.statistics().abandoned == 1)
        stats = pool.statistics()
        assert (stats.cancelled, stats.completed) == (1, 0)

    async def test_cancelled_while_queued_never_runs(self):
        """A queued call whose caller is cancelled is removed and never runs."""
        single = HashPool(1)
        gate, queued = Gate(), Gate()
        queued.release.set()
        async with anyio.create_task_group() as tg:
            tg.start_soon(single.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            with anyio.move_on_after(0.05):
                await single.run(queued)
            gate.release.set()
        assert queued.calls == 0
        assert single.statistics().cancelled == 1
        single.close()

    async def test_overloaded_at_admission(self):
        """A full queue refuses at once with Overloaded and a retry_after."""
        single = HashPool(1, max_pending=1, max_queue_wait=None)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(single.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            tg.start_soon(single.run, int)
            await wait_until(lambda: single.statistics().queued == 1)
            with pytest.raises(Overloaded) as refused:
                await single.run(int)
            gate.release.set()
        assert refused.value.retry_after > 0
        assert refused.value.queued == 1
        single.close()

    async def test_closed_pool(self):
        """Closing answers queued callers with PoolClosed and refuses new calls."""
        single = HashPool(1)
        gate = Gate()
        errors: list[BaseException] = []

        async def queued() -> None:
            try:
                await single.run(int)
            except PoolClosed as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(single.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            tg.start_soon(queued)
            await wait_until(lambda: single.statistics().queued == 1)
            single.close()
            gate.release.set()
        assert len(errors) == 1
        with pytest.raises(PoolClosed):
            await single.run(int)

    async def test_aclose_waits_for_running_calls(self):
        """aclose() returns once the running call has finished, on every loop."""
        single = HashPool(1)
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(single.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            timer = threading.Timer(0.05, gate.release.set)
            timer.start()
            await single.aclose()
            assert single.statistics().completed == 1
        timer.join()


class TestFacade:
    """PasswordHash's async twins on each loop."""

    async def test_round_trip(self, ph):
        """ahash, averify, averify_and_update and averify_dummy answer as their sync twins."""
        encoded = await ph.ahash("s3cret")
        assert await ph.averify("s3cret", encoded)
        assert not await ph.averify("wrong", encoded)
        assert await ph.averify_and_update("s3cret", encoded) == (True, None)
        assert await ph.averify_dummy() is False
        assert await ph.ahash("pw", salt="fixedsalt") == ph.hash("pw", salt="fixedsalt")

    async def test_upgrade_in_one_call(self, pool):
        """A hash from a non-preferred hasher verifies and comes back upgraded."""
        argon2_first = PasswordHash.recommended(pool=pool, profile=profiles.CHEAP)
        old = PasswordHash(profiles.CHEAP.hashers(), pool=pool).hash("s3cret")  # PBKDF2
        ok, new = await argon2_first.averify_and_update("s3cret", old)
        assert ok
        assert new is not None
        assert new.startswith("argon2$")
        assert await argon2_first.averify("s3cret", new)

    @pytest.mark.parametrize(
        "encoded",
        [
            pytest.param(None, id="missing"),
            pytest.param("!unusable", id="unusable"),
            pytest.param("nosuch$1$x$y", id="unknown-algorithm"),
        ],
    )
    async def test_bad_hashes_verify_false(self, ph, encoded):
        """Missing, unusable and unknown hashes verify False on the pool, never raise."""
        assert await ph.averify("pw", encoded) is False
        assert await ph.averify_and_update("pw", encoded) == (False, None)

    async def test_type_errors_before_queueing(self, ph, pool):
        """A wrong argument type raises TypeError in the caller; nothing reaches the pool."""
        with pytest.raises(TypeError):
            await ph.ahash(12345)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await ph.averify("pw", b"bytes-hash")  # type: ignore[arg-type]
        assert pool.statistics().admitted == 0

    async def test_timeout(self):
        """timeout= reaches the pool: a slow hash raises TimeoutError in the caller, promptly."""
        single = HashPool(1)
        slow = PasswordHash([PBKDF2Hasher(iterations=1_000_000)], pool=single)
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            await slow.ahash("pw", timeout=0.05)
        assert time.perf_counter() - start < 1.0
        single.close()

    async def test_cancellation(self):
        """Cancelling a caller awaiting averify returns at once."""
        single = HashPool(1)
        slow = PasswordHash([PBKDF2Hasher(iterations=1_000_000)], pool=single)
        start = time.perf_counter()
        with anyio.move_on_after(0.05) as scope:
            await slow.averify("pw", "pbkdf2_sha256$1000000$salt$AAAA")
        assert scope.cancelled_caught
        assert time.perf_counter() - start < 1.0
        single.close()


@pytest.mark.loop_responsive(max_lag=0.2)
async def test_burst_of_real_hashes_keeps_every_loop_responsive(anyio_backend):
    """30 concurrent PBKDF2 hashes on the pool: the plugin's lag check passes on every loop."""
    # No wait-based admission: all 30 run (a fresh pool would refuse most of the burst).
    pool = HashPool(2, max_queue_wait=None, name="test")
    results: list[str] = []

    async def one(i: int) -> None:
        results.append(await pool.run(pbkdf2, 100_000, str(i).encode()))

    async with anyio.create_task_group() as tg:
        for i in range(30):
            tg.start_soon(one, i)
    assert len(set(results)) == 30
    pool.close()


def scenario_transcript(backend: str) -> list[str]:
    """Run one scenario on ``backend`` and describe every outcome as text."""
    name, options = BACKENDS[backend]

    async def scenario() -> list[str]:
        out: list[str] = []
        pool = HashPool(1, max_pending=1, max_queue_wait=None)
        ph = PasswordHash(profiles.CHEAP.hashers(), pool=pool)
        encoded = await ph.ahash("pw")
        out.append(f"verify {await ph.averify('pw', encoded)}")
        out.append(f"update {await ph.averify_and_update('pw', encoded)}")
        out.append(f"dummy {await ph.averify_dummy()}")
        try:
            await pool.run(divmod, 1, 0)
        except ZeroDivisionError as exc:
            out.append(f"raised {type(exc).__name__}")
        gate = Gate()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, gate)
            await anyio.to_thread.run_sync(gate.started.wait, 10)
            try:
                await pool.run(int, timeout=0.02)
            except TimeoutError:
                out.append("timeout TimeoutError")
            with anyio.move_on_after(0.02) as scope:
                await pool.run(int)
            out.append(f"cancelled {scope.cancelled_caught}")
            tg.start_soon(pool.run, int)
            await wait_until(lambda: pool.statistics().queued == 1)
            try:
                await pool.run(int)
            except Overloaded:
                out.append("refused Overloaded")
            gate.release.set()
        await pool.aclose()
        try:
            await pool.run(int)
        except PoolClosed:
            out.append("closed PoolClosed")
        stats = pool.statistics()
        out.append(
            f"stats completed={stats.completed} failed={stats.failed} "
            f"rejected={stats.rejected} cancelled={stats.cancelled} expired={stats.expired}"
        )
        return out

    return anyio.run(scenario, backend=name, backend_options=options)


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_same_transcript_on_every_backend():
    """One scenario (results, failure, timeout, cancel, refusal, close) reads the same on all."""
    transcripts = {backend: scenario_transcript(backend) for backend in BACKENDS}
    expected = [
        "verify True",
        "update (True, None)",
        "dummy False",
        "raised ZeroDivisionError",
        "timeout TimeoutError",
        "cancelled True",
        "refused Overloaded",
        "closed PoolClosed",
        "stats completed=7 failed=1 rejected=1 cancelled=1 expired=1",
    ]
    assert transcripts == dict.fromkeys(BACKENDS, expected)


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build")
def test_native_runners_without_anyio():
    """asyncio.run, uvloop.run and trio.run drive the pool directly, with no anyio in between."""
    import trio
    import uvloop

    pool = HashPool(2)
    ph = PasswordHash(profiles.CHEAP.hashers(), pool=pool)

    async def asyncio_main() -> bool:
        # asyncio.TimeoutError is the builtin TimeoutError from 3.11 on, distinct on 3.10.
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(pool.run(time.sleep, 0.1), 0.02)
        return await ph.averify("pw", await ph.ahash("pw"))

    async def trio_main() -> bool:
        with trio.move_on_after(0.02):
            await pool.run(time.sleep, 0.1)
        return await ph.averify("pw", await ph.ahash("pw"))

    assert asyncio.run(asyncio_main())
    assert uvloop.run(asyncio_main())
    assert trio.run(trio_main)
    deadline = time.monotonic() + 10
    while pool.statistics().running and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = pool.statistics()
    # Each cancelled call either never ran or ran to the end for nobody (abandoned).
    assert (stats.cancelled, stats.completed) == (3, 6)
    pool.close()
