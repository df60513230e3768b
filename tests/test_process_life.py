"""Process life: fork, gunicorn ``--preload``, shutdown, and many event loops in a row.

A pool is process-wide state with threads behind it; these tests pin down that
it survives the process events an async server goes through: a fork after it
was used (gunicorn ``--preload``), interpreter exit with calls in flight,
`close()` with callers waiting, and a long run of short-lived event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import loopsafe
from _support import (
    REPO,
    child_env,
    facade_for,
    report,
    rss_bytes,
    run_child,
    thread_count,
)
from loopsafe import HashPool, PasswordHash, PoolClosed, default_pool, profiles
from loopsafe.cli._harness import free_port

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
fork_in_threads = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def _in_child(body: object) -> int:
    """Fork; run ``body()`` in the child (its return value is the exit code); return it."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = int(body())  # type: ignore[operator]
        except BaseException:  # noqa: BLE001 - the child must always leave through _exit
            import traceback

            traceback.print_exc()
            code = 98
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child did not finish within 60 s")
    return -1  # pragma: no cover


# -- fork ------------------------------------------------------------------------------


@needs_fork
@fork_in_threads
def test_default_pool_and_facade_survive_fork():
    """The default pool, used by a PasswordHash before fork, works in the child and the parent."""
    ph = PasswordHash(profiles.CHEAP.hashers())
    stored = asyncio.run(ph.ahash("fork-password"))
    pool = default_pool()
    assert pool.statistics().threads >= 1

    def child() -> int:
        if default_pool() is not pool:
            return 2
        if not asyncio.run(ph.averify("fork-password", stored)):
            return 3
        if asyncio.run(ph.averify("wrong", stored)):
            return 4
        made = asyncio.run(ph.ahash("made-in-child"))
        if not ph.verify("made-in-child", made):
            return 5
        stats = default_pool().statistics()
        return 0 if stats.threads <= stats.max_workers and stats.running == 0 else 6

    assert _in_child(child) == 0
    assert asyncio.run(ph.averify("fork-password", stored)) is True
    assert default_pool() is pool


@needs_fork
@fork_in_threads
def test_fork_with_calls_running_and_queued():
    """A fork while another thread's loop has calls running and queued: the child starts clean.

    The child's pool has no running or queued calls and answers its own at once;
    the parent's calls all complete once their blocker is released.
    """
    pool = HashPool(1, max_queue_wait=None)
    release = threading.Event()
    started = threading.Event()
    results: list[object] = []

    def blocker(n: int) -> int:
        started.set()
        release.wait(30)
        return n

    async def parent_calls() -> None:
        results.extend(
            await asyncio.gather(*(pool.run(blocker, n) for n in range(4)), return_exceptions=True)
        )

    loop_thread = threading.Thread(target=asyncio.run, args=(parent_calls(),))
    loop_thread.start()
    assert started.wait(10)
    deadline = time.monotonic() + 10
    while pool.statistics().queued < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (pool.statistics().running, pool.statistics().queued) == (1, 3)

    def child() -> int:
        stats = pool.statistics()
        if (stats.running, stats.queued, stats.threads) != (0, 0, 0):
            return 2
        if asyncio.run(pool.run(abs, -7, timeout=10)) != 7:
            return 3
        return 0

    try:
        assert _in_child(child) == 0
    finally:
        release.set()
        loop_thread.join(30)
    assert results == [0, 1, 2, 3]
    stats = pool.statistics()
    assert (stats.admitted, stats.completed, stats.running, stats.queued) == (4, 4, 0, 0)
    pool.close()


@needs_fork
@fork_in_threads
def test_statistics_add_up_in_forked_child():
    """In a child forked with calls in flight, the statistics invariant still holds."""
    pool = HashPool(1, max_queue_wait=None)
    release = threading.Event()

    async def parent_calls() -> None:
        await asyncio.gather(*(pool.run(release.wait, 30) for _ in range(3)))

    loop_thread = threading.Thread(target=asyncio.run, args=(parent_calls(),))
    loop_thread.start()
    deadline = time.monotonic() + 10
    while pool.statistics().queued < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    def child() -> int:
        s = pool.statistics()
        answered = s.completed + s.cancelled + s.expired + s.running + s.queued
        return 0 if s.admitted == answered else 1

    try:
        code = _in_child(child)
    finally:
        release.set()
        loop_thread.join(30)
        pool.close()
    assert code == 0


# -- gunicorn --preload with uvicorn workers ------------------------------------------


def _uvicorn_worker_class() -> str:
    """Prefer the uvicorn-worker package; uvicorn.workers is deprecated since uvicorn 0.30."""
    try:
        import uvicorn_worker  # noqa: F401
    except ImportError:
        pytest.importorskip("uvicorn")
        return "uvicorn.workers.UvicornWorker"
    return "uvicorn_worker.UvicornWorker"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="gunicorn needs a POSIX system")
def test_gunicorn_preload_serves_logins_from_every_worker():
    """Gunicorn --preload, 2 uvicorn workers: both verify logins on pools made fresh after fork."""
    pytest.importorskip("gunicorn")
    httpx = pytest.importorskip("httpx")
    worker_class = _uvicorn_worker_class()
    port = free_port()
    apps = Path(__file__).resolve().parent / "apps"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--preload",
        "--workers=2",
        f"--worker-class={worker_class}",
        f"--bind=127.0.0.1:{port}",
        f"--pythonpath={apps}",
        "--graceful-timeout=5",
        "--log-level=warning",
        "preload_app:app",
    ]
    env = child_env()
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    seen: dict[int, dict[str, object]] = {}
    wrong: list[bool] = []
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as master:
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert master.poll() is None, master.communicate()[0][-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(f"{url}/health", timeout=1)
                    break
                time.sleep(0.2)
            else:
                pytest.fail("gunicorn did not answer within 30 s")

            async def burst() -> list[dict[str, object]]:
                # A fresh connection per request, sent together, so both workers accept some.
                async def one(password: str) -> dict[str, object]:
                    async with httpx.AsyncClient(timeout=10) as client:
                        response = await client.post(f"{url}/login", content=password)
                        response.raise_for_status()
                        return response.json()  # type: ignore[no-any-return]

                passwords = ["preload-password"] * 7 + ["wrong"]
                return await asyncio.gather(*(one(p) for p in passwords))

            for _ in range(25):  # at most 200 requests
                for answer in asyncio.run(burst()):
                    if answer["ok"]:
                        seen[int(answer["pid"])] = answer  # type: ignore[call-overload]
                    else:
                        wrong.append(False)
                if len(seen) >= 2:
                    break
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                output = master.communicate(timeout=20)[0]
            except subprocess.TimeoutExpired:
                master.kill()
                output = master.communicate()[0]
    report(f"gunicorn {worker_class}: logins answered by worker pids {sorted(seen)}")
    assert len(seen) == 2, (seen, output[-3000:])
    assert wrong, "wrong passwords must verify False"
    for pid, answer in seen.items():
        assert pid != answer["master_pid"]
        assert answer["master_threads"] >= 1  # the pool ran in the master before the fork
        assert 1 <= answer["threads"] <= answer["max_workers"]  # type: ignore[operator]
    assert master.returncode is not None


# -- shutdown --------------------------------------------------------------------------

EXIT_SCRIPTS = {
    "default-pool-asyncio": """
        import asyncio
        from loopsafe import PasswordHash, configure, default_pool, profiles, PBKDF2Hasher
        configure(max_queue_wait=None)  # admit all six: some must still be queued at exit
        ph = PasswordHash([PBKDF2Hasher(iterations=3_000_000)])
        async def main():
            tasks = [asyncio.ensure_future(ph.ahash("pw")) for _ in range(6)]
            await asyncio.sleep(0.2)
            s = default_pool().statistics()
            print("leaving", s.running, s.queued, flush=True)
        asyncio.run(main())
    """,
    "default-pool-trio": """
        import trio
        from loopsafe import PasswordHash, configure, default_pool, profiles, PBKDF2Hasher
        configure(max_queue_wait=None)  # admit all six: some must still be queued at exit
        ph = PasswordHash([PBKDF2Hasher(iterations=3_000_000)])
        async def main():
            async with trio.open_nursery() as nursery:
                for _ in range(6):
                    nursery.start_soon(ph.ahash, "pw")
                await trio.sleep(0.2)
                s = default_pool().statistics()
                print("leaving", s.running, s.queued, flush=True)
                nursery.cancel_scope.cancel()
        trio.run(main)
    """,
    "sys-exit-inside-loop": """
        import asyncio, sys, time
        from loopsafe import HashPool
        pool = HashPool(1, max_queue_wait=None)
        async def main():
            tasks = [asyncio.ensure_future(pool.run(time.sleep, 30)) for _ in range(5)]
            await asyncio.sleep(0.1)
            s = pool.statistics()
            print("leaving", s.running, s.queued, flush=True)
            sys.exit(0)
        asyncio.run(main())
    """,
    "loop-in-thread-left-running": """
        import asyncio, threading, time
        from loopsafe import HashPool
        pool = HashPool(1, max_queue_wait=None)
        async def main():
            await asyncio.gather(*(pool.run(time.sleep, 30) for _ in range(4)))
        threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
        time.sleep(0.3)
        s = pool.statistics()
        print("leaving", s.running, s.queued, flush=True)
    """,
}


@pytest.mark.parametrize(
    "script", [pytest.param(body, id=name) for name, body in EXIT_SCRIPTS.items()]
)
def test_interpreter_exit_with_calls_in_flight_does_not_hang(script):
    """A process leaving with hashes running and queued exits promptly, without a traceback."""
    result = run_child(textwrap.dedent(script), timeout=20)
    assert result.returncode is not None, f"hung at exit: {result.stdout} {result.stderr}"
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("leaving"), result.stdout
    _, running, queued = result.stdout.split()
    assert int(running) >= 1
    assert int(queued) >= 1
    assert result.seconds < 15
    assert "Traceback" not in result.stderr, result.stderr[-2000:]


@pytest.mark.anyio
async def test_close_answers_queued_callers_with_pool_closed():
    """close() answers each queued caller with PoolClosed at once; the running call finishes."""
    import anyio

    pool = HashPool(1, max_queue_wait=None)
    release = threading.Event()
    outcomes: dict[int, object] = {}

    async def call(n: int) -> None:
        try:
            outcomes[n] = await pool.run(lambda n=n: release.wait(30) and n)
        except PoolClosed as exc:
            outcomes[n] = exc

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(call, n)
        with anyio.fail_after(10):
            # One running and four queued: a freshly started worker may not
            # have taken the first call yet when four others are queued.
            while (pool.statistics().running, pool.statistics().queued) != (1, 4):
                await anyio.sleep(0.01)
        start = time.perf_counter()
        pool.close()
        with anyio.fail_after(5):
            while len(outcomes) < 4:
                await anyio.sleep(0.005)
        answered_in = time.perf_counter() - start
        release.set()
    assert answered_in < 2
    closed = [o for o in outcomes.values() if isinstance(o, PoolClosed)]
    assert len(closed) == 4
    assert all("closed before this call could run" in str(exc) for exc in closed)
    assert sum(1 for o in outcomes.values() if isinstance(o, int)) == 1
    stats = pool.statistics()
    assert (stats.admitted, stats.completed, stats.cancelled) == (5, 1, 4)
    assert (stats.running, stats.queued) == (0, 0)
    with pytest.raises(PoolClosed, match="closed"):
        await pool.run(abs, 1)
    with pytest.raises(PoolClosed):
        pool.check_admission()


@pytest.mark.anyio
async def test_configure_sets_bounds_in_place():
    """configure() with new bounds keeps the same default pool: queued calls start, none is lost."""
    import anyio

    pool = loopsafe.configure(1, max_queue_wait=None)
    release = threading.Event()
    answers: list[int] = []

    async def call(n: int) -> None:
        answers.append(await pool.run(lambda n=n: release.wait(30) and n))

    try:
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(call, n)
            with anyio.fail_after(10):
                while pool.statistics().queued < 2:
                    await anyio.sleep(0.01)
            assert loopsafe.configure(3, max_queue_wait=None) is pool
            with anyio.fail_after(10):
                while pool.statistics().running < 3:
                    await anyio.sleep(0.01)
            release.set()
        assert sorted(answers) == [0, 1, 2]
        assert not pool.closed
        assert pool.statistics().completed >= 3
    finally:
        release.set()
        loopsafe.configure()


@pytest.mark.anyio
async def test_configure_drains_the_old_default_pool():
    """configure() with another nice replaces the pool; the old one's calls still get answers."""
    import anyio

    old = loopsafe.configure(1, max_queue_wait=None)
    release = threading.Event()
    answers: list[int] = []

    async def call(n: int) -> None:
        answers.append(await old.run(lambda n=n: release.wait(30) and n))

    try:
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(call, n)
            with anyio.fail_after(10):
                while old.statistics().queued < 2:
                    await anyio.sleep(0.01)
            new = loopsafe.configure(nice=0)
            assert default_pool() is new
            assert new is not old
            assert old.closed
            release.set()
        assert sorted(answers) == [0, 1, 2]
        assert await new.run(abs, -1) == 1
    finally:
        release.set()
        loopsafe.configure()


# -- many loops ------------------------------------------------------------------------

LOOPS = 200


def _threads_besides_default_pool() -> int:
    """Threads alive now that are not the default pool's workers (which start lazily)."""
    return thread_count() - default_pool().statistics().threads


def test_many_asyncio_runs_leave_no_thread_or_memory_growth():
    """200 consecutive asyncio.run calls on the default pool: threads and RSS stay flat."""
    ph = facade_for("pbkdf2_sha256")
    stored = ph.hash("loop-password")

    async def one() -> None:
        assert await ph.averify("loop-password", stored)
        assert await default_pool().run(abs, -1) == 1

    for _ in range(20):  # warm-up: threads started, allocator settled
        asyncio.run(one())
    others_before, rss_before = _threads_besides_default_pool(), rss_bytes()
    for _ in range(LOOPS):
        asyncio.run(one())
    others_after, rss_after = _threads_besides_default_pool(), rss_bytes()
    growth_mib = (rss_after - rss_before) / 2**20
    stats = default_pool().statistics()
    report(
        f"{LOOPS} asyncio.run: threads besides the pool {others_before} -> {others_after}, "
        f"pool threads {stats.threads}/{stats.max_workers}, RSS growth {growth_mib:.1f} MiB"
    )
    assert others_after <= others_before
    assert stats.threads <= stats.max_workers
    assert growth_mib < 16
    assert (stats.running, stats.queued) == (0, 0)


def test_many_trio_runs_leave_no_thread_growth():
    """100 consecutive trio.run calls on the default pool: thread count stays flat."""
    trio = pytest.importorskip("trio")
    ph = facade_for("pbkdf2_sha256")
    stored = ph.hash("loop-password")

    async def one() -> None:
        assert await ph.averify("loop-password", stored)

    for _ in range(10):
        trio.run(one)
    others_before, rss_before = _threads_besides_default_pool(), rss_bytes()
    for _ in range(100):
        trio.run(one)
    others_after = _threads_besides_default_pool()
    growth_mib = (rss_bytes() - rss_before) / 2**20
    report(
        f"100 trio.run: threads besides the pool {others_before} -> {others_after}, "
        f"RSS growth {growth_mib:.1f} MiB"
    )
    assert others_after <= others_before
    assert default_pool().statistics().threads <= default_pool().max_workers
    assert growth_mib < 16


def test_many_loops_in_a_fresh_interpreter():
    """In a fresh interpreter, 200 asyncio.run calls end with at most max_workers pool threads."""
    script = textwrap.dedent(
        """
        import asyncio, json, threading, psutil
        from loopsafe import default_pool
        def rss(): return psutil.Process().memory_info().rss
        async def one(): return await default_pool().run(sum, range(1000))
        asyncio.run(one())
        def others(): return threading.active_count() - default_pool().statistics().threads
        t0, r0 = others(), rss()
        peak = t0
        for _ in range(200):
            asyncio.run(one())
            peak = max(peak, others())
        s = default_pool().statistics()
        print(json.dumps({"t0": t0, "t1": others(), "peak": peak,
                          "growth": rss() - r0, "max_workers": s.max_workers,
                          "threads": s.threads, "completed": s.completed}))
        """
    )
    result = run_child(script, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    report(f"fresh interpreter, 200 asyncio.run: {figures}")
    assert figures["completed"] == 201
    assert figures["peak"] <= figures["t0"]
    assert figures["threads"] <= figures["max_workers"]
    assert figures["growth"] < 16 * 2**20
