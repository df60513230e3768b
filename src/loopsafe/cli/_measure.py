"""Measurement primitives shared by ``loopsafe bench``, ``storm`` and ``calibrate``.

Everything here follows the measuring rules in docs/measuring.md: the CPU
cost of one hash is the median ``time.process_time()`` of single-threaded calls
after a warm-up (so Argon2's internal lanes count), the machine's limit is
usable cores divided by that cost, and memory is the peak RSS during a run
minus the RSS just before it. It also says which machine a figure came from,
and turns a missing optional dependency into a message naming the extra.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import ssl
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Final

from loopsafe._limits import container_limits
from loopsafe._settings import usable_cpus

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from loopsafe.hashers import Hasher

__all__ = [
    "BENCH_EXTRA_HINT",
    "MissingExtra",
    "PeakRSS",
    "bench_extra",
    "cpu_seconds",
    "cpu_seconds_all_busy",
    "kdf_backend_info",
    "kdf_note",
    "lower_cost",
    "machine_info",
]

#: What to install when rich, matplotlib, asgiref or psutil is missing.
BENCH_EXTRA_HINT: Final = "pip install 'loopsafe[bench]'"
_MIB: Final = 2**20
#: From here on, iteration counts are rounded to 10,000 (1,000,000, not 999,990).
_LARGE_ITERATIONS: Final = 100_000


class MissingExtra(ImportError):
    """An optional dependency of the command line is not installed."""


@contextlib.contextmanager
def bench_extra(what: str) -> Iterator[None]:
    """Turn an ImportError in the block into `MissingExtra`, naming the extra to install.

    Args:
        what: What needed the import, for the message (e.g. ``"--plot"``).
    """
    try:
        yield
    except ImportError as exc:
        missing = exc.name or "a dependency"
        raise MissingExtra(f"{what} needs {missing}: {BENCH_EXTRA_HINT}") from exc


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, object]:
    """Describe the machine, interpreter and library versions behind a run (for JSON reports)."""
    return {
        "usable_cpus": usable_cpus(),
        "cpu_count": os.cpu_count(),
        # What the pool is sized from, and where it was read (cgroup limits).
        "container": container_limits().as_dict(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
        "loopsafe": _version("loopsafe"),
        "django": _version("django"),
        "asgiref": _version("asgiref"),
        "argon2_cffi": _version("argon2-cffi"),
        "bcrypt": _version("bcrypt"),
        "cryptography": _version("cryptography"),
        "openssl": ssl.OPENSSL_VERSION,
        # Which implementation computes PBKDF2 and scrypt here, and why.
        "kdf_backends": kdf_backend_info(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def kdf_backend_info() -> dict[str, object]:
    """`loopsafe.hashers.kdf_backends` as JSON-ready values (measuring on first use)."""
    from loopsafe.hashers import kdf_backends

    return {kdf: choice.as_dict() for kdf, choice in kdf_backends().items()}


def kdf_note(machine: dict[str, object]) -> str:
    """``PBKDF2 on cryptography, scrypt on cryptography`` from `machine_info`, for titles."""
    backends = machine.get("kdf_backends")
    if not isinstance(backends, dict):
        return ""
    names = {kdf: info.get("backend") for kdf, info in backends.items() if isinstance(info, dict)}
    return f"PBKDF2 on {names.get('pbkdf2')}, scrypt on {names.get('scrypt')}"


def cpu_seconds(fn: Callable[[], object], *, repeats: int = 3, warmups: int = 1) -> float:
    """Return the median CPU seconds (all threads of the process) one call of ``fn`` takes.

    Args:
        fn: The work, called with no arguments on this thread.
        repeats: Measured calls (at least 3 for a median that means something).
        warmups: Calls made first and not measured.

    Raises:
        ValueError: If ``repeats`` is less than 1.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmups):
        fn()
    costs = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        costs.append(time.process_time() - start)
    # process_time has a coarse tick on some platforms: never report zero.
    return max(statistics.median(costs), 1e-7)


def cpu_seconds_all_busy(fn: Callable[[], object], workers: int, *, repeats: int = 2) -> float:
    """Return the CPU seconds one call of ``fn`` takes while ``workers`` calls run at once.

    The capacity rule (usable cores / single-thread CPU seconds) assumes a call
    costs the same CPU whether it runs alone or with every core busy. Virtual
    CPUs that share a physical core, memory bandwidth and clock boost make it
    cost more; ``cpu_seconds(fn) / cpu_seconds_all_busy(fn, cores)`` is then the
    best throughput ratio the machine allows any variant.

    Args:
        fn: The work, called with no arguments; it must release the GIL (a
            hash does) or the threads only take turns.
        workers: Calls at once (the usable cores).
        repeats: Measured rounds; the median is returned.
    """
    if repeats < 1 or workers < 1:
        raise ValueError("repeats and workers must be at least 1")
    costs = []
    for _ in range(repeats):
        threads = [threading.Thread(target=fn) for _ in range(workers)]
        start = time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        costs.append((time.process_time() - start) / workers)
    return max(statistics.median(costs), 1e-7)


def lower_cost(hasher: Hasher) -> Hasher:
    """Return a hasher of the same algorithm with a lower cost, whose hashes ``hasher`` upgrades.

    Stands for "hashed by an older Django": PBKDF2 at two thirds of the
    iterations (Django 6.1's 1,500,000 becomes 5.2's 1,000,000), Argon2 one
    pass fewer (at one pass, half the memory), bcrypt one round fewer, scrypt
    half of N. Where a parameter is already at its minimum (the cheap test
    profile) the stored hash costs a step *more*, which needs an update too.
    """
    # Imported here: the hashers' module is only needed once a run starts.
    from loopsafe.hashers import (
        Argon2Hasher,
        BCryptSHA256Hasher,
        PBKDF2Hasher,
        ScryptHasher,
    )

    if isinstance(hasher, PBKDF2Hasher):
        step = 10_000 if hasher.iterations >= _LARGE_ITERATIONS else 10
        iterations = max(1, hasher.iterations * 2 // 3 // step * step)
        return type(hasher)(iterations=iterations)
    if isinstance(hasher, Argon2Hasher):
        time_cost, memory = hasher.time_cost, hasher.memory_cost
        if time_cost > 1:
            time_cost -= 1
        elif memory // 2 >= 8 * hasher.parallelism:
            memory //= 2
        else:  # already at the minimum: one pass more is "other parameters" too
            time_cost += 1
        return Argon2Hasher(time_cost=time_cost, memory_cost=memory, parallelism=hasher.parallelism)
    if isinstance(hasher, BCryptSHA256Hasher):
        rounds = hasher.rounds - 1 if hasher.rounds > hasher.min_rounds else hasher.rounds + 1
        return type(hasher)(rounds=rounds)
    if isinstance(hasher, ScryptHasher):
        n = hasher.work_factor // 2 if hasher.work_factor > 2 else hasher.work_factor * 2  # noqa: PLR2004
        return ScryptHasher(
            work_factor=n, block_size=hasher.block_size, parallelism=hasher.parallelism
        )
    raise TypeError(f"no lower cost is defined for {type(hasher).__name__}")


@dataclass
class _Peak:
    before: int = 0
    peak: int = 0


class PeakRSS:
    """Sample this process's resident memory on a thread; report the peak over the RSS before.

    ``ru_maxrss`` only ever grows over a process's life, so it cannot tell one
    run of many from the next; a sampler every ``interval`` seconds can. Use as
    a context manager; `delta_mib` is valid after it exits.

    Args:
        interval: Seconds between samples.
    """

    def __init__(self, interval: float = 0.01) -> None:
        """Prepare the sampler; nothing runs until the block is entered."""
        with bench_extra("measuring peak memory"):
            import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = _Peak()

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self._state.peak = max(self._state.peak, self._rss())

    def __enter__(self) -> Self:
        """Take the baseline and start sampling."""
        rss = self._rss()
        self._state = _Peak(before=rss, peak=rss)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="loopsafe-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop sampling, with one last sample."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._state.peak = max(self._state.peak, self._rss())

    @property
    def delta_mib(self) -> float:
        """Peak RSS during the block minus the RSS before it, in MiB."""
        return round((self._state.peak - self._state.before) / _MIB, 1)
