"""Helpers shared by the reliability and security tests (bad input, soak, process life).

Nothing here is a fixture: plain functions, so a test reads top to bottom.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from loopsafe import Hasher, HashPool, PasswordHash

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"

#: A cheap verify takes milliseconds; anything bounded finishes far below this
#: even on a loaded 2-core machine. Unbounded work (a hash whose encoded
#: parameters ask for 2**31 rounds) runs for hours, so the gap is enormous.
CALL_BOUND = 10.0


def cheap_hashers() -> list[Hasher]:
    """Return one hasher per algorithm at the cheap test profile, skipping missing libraries.

    The profile holds Django's default ``PASSWORD_HASHERS``; plain bcrypt and
    MD5 (which Django can still be configured with) are added at their cheapest.
    """
    from loopsafe import (
        BCryptHasher,
        HasherNotAvailable,
        MD5Hasher,
        profiles,
    )

    extra = [BCryptHasher(rounds=profiles.CHEAP.bcrypt_rounds), MD5Hasher()]
    usable = []
    for hasher in [*profiles.CHEAP.hashers(), *extra]:
        try:
            hasher.salt()
        except HasherNotAvailable:
            continue
        usable.append(hasher)
    return usable


def cheap_algorithms() -> list[str]:
    """Return the algorithm names of `cheap_hashers`, in profile order."""
    return [hasher.algorithm for hasher in cheap_hashers()]


def facade_for(algorithm: str, *, pool: HashPool | None = None) -> PasswordHash:
    """Return a `PasswordHash` preferring ``algorithm`` and able to verify all the others."""
    from loopsafe import PasswordHash

    hashers = cheap_hashers()
    preferred = [h for h in hashers if h.algorithm == algorithm]
    others = [h for h in hashers if h.algorithm != algorithm]
    return PasswordHash([*preferred, *others], pool=pool)


@dataclass(frozen=True)
class Outcome:
    """What one call did: a value kind (``"False"``, ``"str"``...) or an exception name."""

    kind: str
    seconds: float
    value: object = None

    def __str__(self) -> str:
        """Show the kind and the time."""
        return f"{self.kind} in {self.seconds * 1000:.1f} ms"


def kind_of(value: object) -> str:
    """Classify a return value for comparison across sync and async paths."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, tuple):
        ok, new = value
        return f"({ok}, {'str' if isinstance(new, str) else new})"
    return type(value).__name__


def outcome(fn: Callable[[], object]) -> Outcome:
    """Run ``fn`` and classify what happened, timing it."""
    start = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return Outcome(type(exc).__name__, time.perf_counter() - start, exc)
    return Outcome(kind_of(value), time.perf_counter() - start, value)


async def aoutcome(fn: Callable[[], Any]) -> Outcome:
    """Await ``fn()`` and classify what happened, timing it."""
    start = time.perf_counter()
    try:
        value = await fn()
    except Exception as exc:  # noqa: BLE001 - classifying is the point
        return Outcome(type(exc).__name__, time.perf_counter() - start, exc)
    return Outcome(kind_of(value), time.perf_counter() - start, value)


def rss_bytes() -> int:
    """Return this process's resident set size now, in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def thread_count() -> int:
    """Return the number of Python threads alive now."""
    return threading.active_count()


def child_env() -> dict[str, str]:
    """Return an environment in which a child interpreter imports this checkout's loopsafe."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONWARNINGS", None)
    return env


@dataclass(frozen=True)
class ChildResult:
    """What a bounded child interpreter did."""

    returncode: int | None  # None: killed at the time bound
    stdout: str
    stderr: str
    seconds: float


def run_child(script: str, *args: str, timeout: float) -> ChildResult:
    """Run ``script`` in a fresh interpreter, killing it (by its pid) if it outlives ``timeout``."""
    start = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
        cwd=REPO,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return ChildResult(None, out, err, time.perf_counter() - start)
    return ChildResult(proc.returncode, out, err, time.perf_counter() - start)


def iter_exception_chain(
    exc: BaseException, *, follow_suppressed: bool = False
) -> Iterator[BaseException]:
    """Yield ``exc``, its causes, contexts and group members, each once.

    Like `traceback`, a context hidden by ``raise ... from None`` is skipped
    unless ``follow_suppressed``: the object is still attached to the exception.
    """
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if current.__cause__ is not None:
            stack.append(current.__cause__)
        context = current.__context__
        if context is not None and (follow_suppressed or not current.__suppress_context__):
            stack.append(context)
        stack.extend(getattr(current, "exceptions", ()))


def load_benchmark(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` (not a package) as ``loopsafe_bench_<name>``."""
    spec = importlib.util.spec_from_file_location(
        f"loopsafe_bench_{name}", REPO / "benchmarks" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def report(text: str) -> None:
    """Print a figure a test measured (shown with ``pytest -s`` or ``-rP``)."""
    sys.stdout.write(text + "\n")


def run_together(work: Callable[[int], object], threads: int = 8) -> None:
    """Run ``work(i)`` on ``threads`` threads released at once, with a tiny switch interval.

    The model is argon2-cffi's ``test_multithreaded_hashing``: a Barrier lines
    the threads up and ``sys.setswitchinterval(1e-6)`` makes the interpreter
    switch between them as often as it can. Re-raises the first failure.
    """
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        started = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
        for thread in started:
            thread.start()
        for thread in started:
            thread.join()
    finally:
        sys.setswitchinterval(old)
    if errors:
        raise errors[0]


class Gate:
    """A callable that holds its worker until released, counting how often it started."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, value: object = None) -> object:
        with self._lock:
            self.calls += 1
        self.started.set()
        if not self.release.wait(timeout=30):
            raise RuntimeError("gate never released")
        return value


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll a thread-side condition from async code, failing after ``timeout`` seconds."""
    import anyio

    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.002)


def pbkdf2(iterations: int, password: bytes = b"correct horse") -> str:
    """A real CPU-bound hash (hashlib releases the GIL while it runs)."""
    return hashlib.pbkdf2_hmac("sha256", password, b"salt" * 4, iterations).hex()


async def end_every_way(pool: HashPool, during: Callable[[], object]) -> object:
    """Drive a one-worker pool (max_pending=1) through every ending; return ``during()``.

    One call completes, one fails, one is cancelled and one expires while
    queued, one is refused at the door; ``during()`` runs while one call runs
    and one waits.
    """
    import anyio
    import pytest

    from loopsafe import Overloaded

    await pool.run(time.sleep, 0.001)
    with pytest.raises(ZeroDivisionError):
        await pool.run(divmod, 1, 0)
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, gate)
        await anyio.to_thread.run_sync(gate.started.wait, 10)
        with anyio.move_on_after(0.02):
            await pool.run(int)  # queued, then cancelled
        with pytest.raises(TimeoutError):
            await pool.run(int, timeout=0.02)  # queued, then expired
        tg.start_soon(pool.run, int)
        await wait_until(lambda: pool.statistics().queued == 1)
        with pytest.raises(Overloaded):
            await pool.run(int)
        seen = during()
        gate.release.set()
    return seen
