"""``loopsafe storm``: an open-loop login storm at multiples of the machine's capacity.

Logins arrive on a Poisson schedule at ``load x capacity`` per second for a
fixed time and never wait for each other (an open loop: a closed loop hides
overload by slowing the offered load down). Every client gives up after its
timeout (``asyncio.wait_for``, which cancels its call). Two variants run the
same hasher code:

``sync_to_async``
    asgiref's ``sync_to_async(..., thread_sensitive=False)``, the loop's
    default executor: Django 6.x. Nothing is ever refused; a call whose client
    gave up while it was queued is dropped, one already running runs on.
``loopsafe``
    `HashPool.run` on one worker per usable core, with admission control. Its
    ``max_queue_wait`` comes from the client timeout (see `queue_budget`), so
    a call it admits can still be answered in time, and the rest are refused
    at once with `Overloaded` (an HTTP 503 in a server).

Goodput is the calls answered correctly within the timeout, per second of the
storm, divided by capacity. Wasted hashes are counted inside the worker: each
call carries a flag its client sets when it gives up, and a hash that finishes
with the flag set ran for nobody. loopsafe's own ``statistics().abandoned``
counts the same thing from the pool's side; both are reported.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from loopsafe import profiles
from loopsafe._lag import LagSnapshot, LoopLagMonitor, percentile
from loopsafe._pool import HashPool
from loopsafe._settings import DEFAULT_NICE, usable_cpus
from loopsafe.cli._accounts import make_accounts, settle
from loopsafe.cli._measure import PeakRSS, bench_extra, cpu_seconds, machine_info
from loopsafe.exceptions import Overloaded
from loopsafe.hashers import verify_password

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from loopsafe.hashers import Hasher

__all__ = [
    "STORM_VARIANTS",
    "StormCell",
    "StormConfig",
    "StormObserver",
    "StormResult",
    "expected_seconds",
    "poisson_arrivals",
    "queue_budget",
    "run_storm",
]

#: The variants a storm compares.
STORM_VARIANTS: tuple[str, ...] = ("sync_to_async", "loopsafe")
#: Most arrivals one cell may schedule: bounds memory and time whatever the rate.
MAX_ARRIVALS = 200_000


def queue_budget(timeout: float, service_s: float) -> float:
    """Return loopsafe's ``max_queue_wait`` for clients that give up after ``timeout``.

    The rule: ``timeout - 2 x service time``, and at least a quarter of the
    timeout. A call admitted with an estimated wait ``w`` is answered after
    about ``w + service``; the second service time is margin for the
    estimate's error (it is a moving average) and for scheduling noise. When
    one hash takes longer than the timeout allows for, a quarter of the
    timeout keeps some queue rather than none.

    Args:
        timeout: The clients' timeout, in seconds.
        service_s: Seconds one hash keeps a worker busy while all are busy.
    """
    return round(max(timeout - 2 * service_s, timeout / 4), 3)


def poisson_arrivals(rate: float, duration: float, rng: random.Random) -> list[float]:
    """Return arrival times (seconds from the start) of a Poisson process in ``[0, duration)``.

    Raises:
        ValueError: If the schedule would exceed `MAX_ARRIVALS`.
    """
    if rate * duration > MAX_ARRIVALS / 2:
        raise ValueError(
            f"{rate:.0f} calls/s for {duration:g} s is more than a storm cell may schedule "
            f"({MAX_ARRIVALS}): use a costlier hasher or a shorter --duration"
        )
    times: list[float] = []
    at = rng.expovariate(rate)
    while at < duration:
        times.append(at)
        at += rng.expovariate(rate)
    return times


@dataclass(frozen=True)
class StormConfig:
    """What ``loopsafe storm`` runs.

    Attributes:
        profile: Parameters of the hasher (Django's defaults of one version).
        algorithm: Which hasher, by Django's algorithm name.
        loads: Offered load, as multiples of the measured capacity.
        duration: Seconds of arrivals per cell.
        timeout: Seconds each client waits before giving up.
        variants: Which variants.
        seed: Seed of the arrival schedules (each load has its own, shared by
            the variants so they face the same storm).
        max_workers: loopsafe's pool size (default: usable cores).
        max_queue_wait: loopsafe's admission budget; None applies `queue_budget`.
        nice: loopsafe's worker priority drop (`HashPool`'s ``nice``).
        hasher: Use this hasher instead of the profile's (``--quick`` sizes one).
        distinct_hashes: Stored hashes made; the storm's users share them.
    """

    profile: profiles.Profile = profiles.DEFAULT
    algorithm: str = "pbkdf2_sha256"
    loads: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    duration: float = 20.0
    timeout: float = 2.0
    variants: tuple[str, ...] = STORM_VARIANTS
    seed: int = 36439
    max_workers: int | None = None
    max_queue_wait: float | None = None
    nice: int = DEFAULT_NICE
    hasher: Hasher | None = None
    distinct_hashes: int = 4

    def __post_init__(self) -> None:
        """Check the bounds and names."""
        if not self.loads or any(not load > 0 for load in self.loads):
            raise ValueError("loads must be positive multiples of capacity")
        if not self.duration > 0 or not self.timeout > 0:
            raise ValueError("duration and timeout must be positive")
        unknown = set(self.variants) - set(STORM_VARIANTS)
        if unknown:
            raise ValueError(f"unknown storm variant: {', '.join(sorted(unknown))}")

    def make_hasher(self) -> Hasher:
        """The hasher the storm runs."""
        return self.hasher if self.hasher is not None else self.profile.hasher(self.algorithm)


@dataclass(frozen=True)
class StormCell:
    """One variant under one load.

    Attributes:
        variant: ``sync_to_async`` or ``loopsafe``.
        load: Offered load as a multiple of capacity.
        offered: Calls issued.
        correct: Calls answered True within the timeout (goodput's numerator).
        wrong: Calls answered False (should be 0: every password is right).
        rejected: Calls refused at once with `Overloaded`.
        timed_out: Calls whose client gave up.
        errors: Calls that failed otherwise.
        latencies: Seconds each correct answer took.
        window_s: Seconds from the storm's start to the last correct answer,
            and at least the storm's duration: the time the pool was working.
        goodput_per_s: ``correct / window_s``.
        goodput: ``goodput_per_s`` / capacity.
        hashes_run: Hashes that ran to the end (counted in the worker).
        wasted: Of those, the ones whose client had already given up.
        pool_abandoned: loopsafe's ``statistics().abandoned`` (None for sync_to_async).
        drain_s: Seconds from the last client's end until the last hash ended.
        lag: Loop lag from the first arrival until every client had its answer.
        peak_rss_delta_mib: Peak RSS during the cell minus RSS before it.
        cpu_share: CPU seconds this process used from the first arrival to the
            last client's end / (that time x usable cores): near 1.0 when
            the pool kept every core busy on an otherwise idle machine.
        lag_samples: ``(seconds since start, lag)`` of every tick, for plots.
    """

    variant: str
    load: float
    offered: int
    correct: int
    wrong: int
    rejected: int
    timed_out: int
    errors: int
    latencies: tuple[float, ...] = field(repr=False)
    window_s: float
    goodput_per_s: float
    goodput: float
    hashes_run: int
    wasted: int
    pool_abandoned: int | None
    drain_s: float
    lag: LagSnapshot
    peak_rss_delta_mib: float
    cpu_share: float = 0.0
    lag_samples: tuple[tuple[float, float], ...] = field(repr=False, default=())

    def as_dict(self, duration: float) -> dict[str, object]:
        """The cell as JSON-ready values (without per-call latencies or lag samples)."""
        return {
            "variant": self.variant,
            "load": self.load,
            "offered": self.offered,
            "offered_per_s": round(self.offered / duration, 3),
            "correct": self.correct,
            "wrong": self.wrong,
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "errors": self.errors,
            "window_s": round(self.window_s, 3),
            "goodput_per_s": round(self.goodput_per_s, 3),
            "goodput": round(self.goodput, 3),
            "latency_ms": {
                "p50": round(percentile(self.latencies, 50) * 1000, 1),
                "p99": round(percentile(self.latencies, 99) * 1000, 1),
                "max": round(max(self.latencies, default=0.0) * 1000, 1),
            },
            "hashes_run": self.hashes_run,
            "wasted": self.wasted,
            "pool_abandoned": self.pool_abandoned,
            "drain_s": round(self.drain_s, 3),
            "lag_ms": {
                "samples": self.lag.samples,
                **{k.removesuffix("_ms"): v for k, v in self.lag.as_ms().items()},
            },
            "peak_rss_delta_mib": self.peak_rss_delta_mib,
            "cpu_share": round(self.cpu_share, 3),
        }


@dataclass
class StormResult:
    """Everything one ``loopsafe storm`` run measured."""

    config: StormConfig
    machine: dict[str, object]
    algorithm: str = ""
    params: dict[str, int] = field(default_factory=dict)
    cpu_s_per_hash: float = 0.0
    capacity_per_s: float = 0.0
    service_s: float = 0.0
    max_workers: int = 0
    max_queue_wait: float = 0.0
    cells: list[StormCell] = field(default_factory=list)
    elapsed_s: float = 0.0


class StormObserver(Protocol):
    """Told what the storm is doing, between measurements (never during one)."""

    def phase(self, text: str) -> None:
        """A preparation step starts."""

    def cell_started(self, label: str, index: int, total: int) -> None:
        """Cell ``index`` (0-based) of ``total`` starts."""

    def cell_finished(self, cell: StormCell) -> None:
        """A cell ended."""


class _Silent:
    def phase(self, text: str) -> None:
        pass

    def cell_started(self, label: str, index: int, total: int) -> None:
        pass

    def cell_finished(self, cell: StormCell) -> None:
        pass


class _Caller:
    """One call: its population (``kind``), and its 'my client has given up' flag.

    The flag is set on the loop and read by the worker. ``loopsafe storm``
    has one population (""); ``--flood`` names them (`loopsafe.cli._flood`).
    """

    __slots__ = ("gone", "kind")

    def __init__(self, kind: str = "") -> None:
        self.kind = kind
        self.gone = False


class _Ledger:
    """Hashes that ran to the end, per population: how many, how many wasted, their CPU time.

    Shared by ``loopsafe storm`` (one population) and ``--flood`` (several):
    `ran` and `wasted` are the totals, ``ran_by``/``wasted_by``/``cpu_by``
    the figures per `_Caller.kind`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ran_by: Counter[str] = Counter()
        self.wasted_by: Counter[str] = Counter()
        self.cpu_by: dict[str, float] = {}
        self.last_end = 0.0

    def finished(self, caller: _Caller, cpu: float = 0.0) -> None:
        """Count one finished hash for ``caller`` that took ``cpu`` seconds of its thread."""
        with self._lock:
            self.ran_by[caller.kind] += 1
            self.wasted_by[caller.kind] += caller.gone
            self.cpu_by[caller.kind] = self.cpu_by.get(caller.kind, 0.0) + cpu
            self.last_end = time.perf_counter()

    @property
    def ran(self) -> int:
        """Hashes that ran to the end, every population together."""
        return sum(self.ran_by.values())

    @property
    def wasted(self) -> int:
        """Of those, hashes for a client that had already given up."""
        return sum(self.wasted_by.values())


@dataclass
class _Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    last_answer: float = 0.0


@dataclass
class _Outcome:
    """What one storm cell's event loop saw, handed back out of ``asyncio.run``."""

    tally: _Tally
    ledger: _Ledger
    pool_abandoned: int | None
    start: float
    clients_done: float
    cpu_share: float
    lag: LoopLagMonitor


def _submitter(
    variant: str,
    work: Callable[[_Caller, str, str], bool],
    pool: HashPool | None,
    timeout: float,
) -> Callable[[_Caller, str, str], Awaitable[bool]]:
    """Return how a variant hands one call to its threads.

    loopsafe is told the client's timeout, as a server passes its request
    deadline: a call that could not finish in time then never starts.
    """
    if pool is not None:

        async def pooled(caller: _Caller, password: str, encoded: str) -> bool:
            return await pool.run(work, caller, password, encoded, timeout=timeout)

        return pooled
    if variant != "sync_to_async":  # pragma: no cover - checked by StormConfig
        raise ValueError(f"unknown storm variant {variant!r}")
    with bench_extra("the sync_to_async variant"):
        from asgiref.sync import sync_to_async

    return sync_to_async(work, thread_sensitive=False)


class _Clients:
    """The storm's clients: each submits one call, gives up at its timeout, and is tallied."""

    def __init__(
        self, submit: Callable[[_Caller, str, str], Awaitable[bool]], timeout: float
    ) -> None:
        self._submit = submit
        self._timeout = timeout
        self.tally = _Tally()

    async def _attempt(self, caller: _Caller, password: str, encoded: str) -> bool:
        try:
            return await self._submit(caller, password, encoded)
        except asyncio.CancelledError:
            # The client's timeout cancelled us: from now on a hash that
            # finishes for this call finishes for nobody.
            caller.gone = True
            raise

    async def client(self, password: str, encoded: str) -> None:
        caller = _Caller()
        outcomes = self.tally.outcomes
        start = time.perf_counter()
        try:
            ok = await asyncio.wait_for(self._attempt(caller, password, encoded), self._timeout)
        except (asyncio.TimeoutError, TimeoutError):
            caller.gone = True
            outcomes["timed_out"] += 1
        except Overloaded:
            outcomes["rejected"] += 1
        except Exception:  # noqa: BLE001 - counted, the storm goes on
            outcomes["errors"] += 1
        else:
            outcomes["correct" if ok else "wrong"] += 1
            if ok:
                answered = time.perf_counter()
                self.tally.latencies.append(answered - start)
                self.tally.last_answer = max(self.tally.last_answer, answered)


async def _storm(
    variant: str,
    hashers: list[Hasher],
    accounts: list[tuple[str, str]],
    arrivals: list[float],
    *,
    timeout: float,
    max_workers: int,
    max_queue_wait: float,
    nice: int,
) -> _Outcome:
    ledger = _Ledger()

    def work(caller: _Caller, password: str, encoded: str) -> bool:
        ok, _ = verify_password(hashers, password, encoded)
        ledger.finished(caller)
        return ok

    pool = None
    if variant == "loopsafe":
        pool = HashPool(
            max_workers, max_queue_wait=max_queue_wait, nice=nice, name="loopsafe-storm"
        )
    clients = _Clients(_submitter(variant, work, pool, timeout), timeout)
    tasks: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    try:
        async with LoopLagMonitor() as lag:
            start, cpu_start = time.perf_counter(), time.process_time()
            for number, at in enumerate(arrivals):
                delay = start + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                password, encoded = accounts[number % len(accounts)]
                tasks.append(loop.create_task(clients.client(password, encoded)))
            await asyncio.gather(*tasks)
            clients_done = time.perf_counter()
            cpu_share = (time.process_time() - cpu_start) / ((clients_done - start) * usable_cpus())
            await settle(lag)
    finally:
        abandoned = None
        if pool is not None:
            await pool.aclose()  # waits for hashes still running
            abandoned = pool.statistics().abandoned
    return _Outcome(clients.tally, ledger, abandoned, start, clients_done, cpu_share, lag)


def run_cell(
    variant: str,
    load: float,
    hashers: list[Hasher],
    accounts: list[tuple[str, str]],
    arrivals: list[float],
    *,
    config: StormConfig,
    capacity: float,
    max_workers: int,
    max_queue_wait: float,
) -> StormCell:
    """Run one variant under one arrival schedule, in a fresh event loop."""
    with PeakRSS() as rss:
        seen = asyncio.run(
            _storm(
                variant,
                hashers,
                accounts,
                arrivals,
                timeout=config.timeout,
                max_workers=max_workers,
                max_queue_wait=max_queue_wait,
                nice=config.nice,
            )
        )
    # asyncio.run has shut the default executor down, so every hash has ended.
    outcomes, ledger = seen.tally.outcomes, seen.ledger
    # Answers to calls admitted near the end arrive after the arrivals stop:
    # count them over the time it took to give them, not over the duration.
    window = max(config.duration, seen.tally.last_answer - seen.start)
    goodput_per_s = outcomes["correct"] / window
    return StormCell(
        variant=variant,
        load=load,
        offered=len(arrivals),
        correct=outcomes["correct"],
        wrong=outcomes["wrong"],
        rejected=outcomes["rejected"],
        timed_out=outcomes["timed_out"],
        errors=outcomes["errors"],
        latencies=tuple(seen.tally.latencies),
        window_s=window,
        goodput_per_s=goodput_per_s,
        goodput=goodput_per_s / capacity,
        hashes_run=ledger.ran,
        wasted=ledger.wasted,
        pool_abandoned=seen.pool_abandoned,
        drain_s=max(0.0, ledger.last_end - seen.clients_done),
        lag=seen.lag.snapshot(),
        peak_rss_delta_mib=rss.delta_mib,
        cpu_share=seen.cpu_share,
        lag_samples=tuple(seen.lag.samples()),
    )


def run_storm(config: StormConfig, observer: StormObserver | None = None) -> StormResult:
    """Measure capacity, then run every (load, variant) cell of ``config``."""
    watch = observer or _Silent()
    started = time.perf_counter()
    hasher = config.make_hasher()
    hasher.check_available()
    cores = usable_cpus()
    workers = config.max_workers or cores
    watch.phase(f"{hasher.algorithm}: making {config.distinct_hashes} stored hashes")
    accounts = make_accounts(hasher, config.distinct_hashes, config.distinct_hashes, cores)
    watch.phase(f"{hasher.algorithm}: measuring the CPU cost of one hash")
    password, encoded = accounts[0]
    cpu = cpu_seconds(lambda: verify_password([hasher], password, encoded))
    capacity = cores / cpu
    # While every worker is busy, each gets cores/workers of the machine.
    service = cpu * max(workers, cores) / cores
    budget = (
        config.max_queue_wait
        if config.max_queue_wait is not None
        else queue_budget(config.timeout, service)
    )
    result = StormResult(
        config=config,
        machine=machine_info(),
        algorithm=hasher.algorithm,
        params=hasher.params,
        cpu_s_per_hash=cpu,
        capacity_per_s=capacity,
        service_s=service,
        max_workers=workers,
        max_queue_wait=budget,
    )
    total = len(config.loads) * len(config.variants)
    index = 0
    for number, load in enumerate(config.loads):
        rng = random.Random(config.seed * 1_000 + round(load * 100))
        arrivals = poisson_arrivals(load * capacity, config.duration, rng)
        # Alternate which variant meets each schedule first.
        order = config.variants if number % 2 == 0 else tuple(reversed(config.variants))
        for variant in order:
            watch.cell_started(f"{load:g}x capacity / {variant}", index, total)
            cell = run_cell(
                variant,
                load,
                [hasher],
                accounts,
                arrivals,
                config=config,
                capacity=capacity,
                max_workers=workers,
                max_queue_wait=budget,
            )
            result.cells.append(cell)
            watch.cell_finished(cell)
            index += 1
    result.elapsed_s = time.perf_counter() - started
    return result


def expected_seconds(config: StormConfig) -> float:
    """A rough upper bound of a run's length, for the progress message."""
    per_cell = config.duration + config.timeout + 1.0
    return math.ceil(per_cell * len(config.loads) * len(config.variants))
