"""``loopsafe storm --flood``: a credential-stuffing flood against legitimate users, FIFO vs keyed.

Open-loop (Poisson) populations share one `HashPool` for ``duration``
seconds, and every client gives up after ``timeout``:

- the **flood**: one client key (``single``) or many (``rotating`` and
  ``devices``: the attacker spread over ``rotating_keys`` addresses) offering
  ``flood_load`` x capacity together;
- the **legitimate users**: ``legit_keys`` keys offering ``legit_load`` x
  capacity together. In the ``devices`` scenario a ``returning_share`` of
  their logins come from **returning** users holding a device cookie
  (`loopsafe.devices`, a real signed token verified at each login); the
  others stay anonymous (``legit``).

Each scenario runs twice on the same arrival schedule, in alternating order:
``fifo`` passes no key (admission and dispatch first come, first served, as
before keys existed) and ``keyed`` passes each client's key (fair share and
round robin, `loopsafe._fair`); the ``devices`` scenario compares ``keyed``
(the cookie ignored) with ``devices`` (a valid cookie earns the device's own
key at `loopsafe.devices.TRUSTED_PRIORITY`). The figures per population: logins answered
correctly in time, latency percentiles, refusals, timeouts, hashes run, the
share of the workers' CPU time its hashes took, and wasted hashes (finished
for a client that had already given up). Before the cells, a few logins on an
idle pool give the unloaded latency the legitimate p99 is compared with.

Capacity. docs/measuring.md's capacity is usable cores / CPU seconds per hash. On a
machine shared with other work the pool gets less than that, and a "0.5x"
legitimate load can already overload it, which would hide what fairness does.
So the run also measures the *effective* capacity (hashes per second of wall
time with every worker busy, just before the cells), and by default scales
the offered loads and the admission budget to it; both capacities are printed.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loopsafe import profiles
from loopsafe._lag import LagSnapshot, LoopLagMonitor, percentile
from loopsafe._pool import HashPool
from loopsafe._settings import DEFAULT_NICE, usable_cpus
from loopsafe.cli._accounts import make_accounts, settle
from loopsafe.cli._measure import cpu_seconds, machine_info
from loopsafe.cli._storm import _Caller, _Ledger, poisson_arrivals, queue_budget
from loopsafe.devices import DeviceCookies
from loopsafe.exceptions import Overloaded
from loopsafe.hashers import verify_password

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe._fair import Key
    from loopsafe.hashers import Hasher

__all__ = ["FloodCell", "FloodConfig", "FloodResult", "flood_document", "flood_table", "run_flood"]

#: The populations of a flood cell ("returning": legitimate users with a device cookie).
CLASSES: tuple[str, ...] = ("returning", "legit", "flood")
SCENARIOS: tuple[str, ...] = ("single", "rotating", "devices")
#: What ``--flood`` runs unless ``--scenario`` says otherwise.
DEFAULT_SCENARIOS: tuple[str, ...] = ("single", "rotating")
#: The variants each scenario compares.
SCENARIO_VARIANTS: dict[str, tuple[str, ...]] = {
    "single": ("fifo", "keyed"),
    "rotating": ("fifo", "keyed"),
    "devices": ("keyed", "devices"),
}
#: The secret the flood's device cookies are signed with (a benchmark, not a server).
_BENCH_SECRET = "loopsafe-storm-flood-device-cookies-" + "0" * 16
#: The baseline before the floods: the legitimate users alone (keyed).
BASELINE = "none"


@dataclass(frozen=True)
class FloodConfig:
    """What ``loopsafe storm --flood`` runs.

    Attributes:
        profile: Parameters of the hasher (Django's defaults of one version).
        algorithm: Which hasher, by Django's algorithm name.
        flood_load: The flood's offered load, as a multiple of capacity.
        legit_load: The legitimate users' offered load together.
        legit_keys: How many legitimate client keys.
        rotating_keys: Over how many keys the ``rotating`` flood spreads.
        duration: Seconds of arrivals per cell.
        timeout: Seconds each client waits before giving up.
        scenarios: ``single``, ``rotating`` and/or ``devices``.
        returning_share: In ``devices``, the share of legitimate logins from
            returning users holding a device cookie.
        baseline: First run the legitimate users alone (scenario ``none``).
        seed: Seed of the arrival schedules (shared by both variants).
        max_workers: The pool's size (default: usable cores).
        max_queue_wait: The admission budget; None applies `queue_budget`.
        nice: The workers' priority drop.
        hasher: Use this hasher instead of the profile's.
        effective: Scale loads to the measured effective capacity (else to
            the CPU capacity, cores / CPU seconds per hash).
    """

    profile: profiles.Profile = profiles.DEFAULT
    algorithm: str = "pbkdf2_sha256"
    flood_load: float = 10.0
    legit_load: float = 0.5
    legit_keys: int = 20
    rotating_keys: int = 200
    duration: float = 30.0
    timeout: float = 2.0
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    returning_share: float = 0.5
    baseline: bool = True
    seed: int = 1212
    max_workers: int | None = None
    max_queue_wait: float | None = None
    nice: int = DEFAULT_NICE
    hasher: Hasher | None = None
    effective: bool = True

    def __post_init__(self) -> None:
        """Check the bounds and names."""
        if not (self.flood_load > 0 and self.legit_load > 0):
            raise ValueError("flood and legitimate loads must be positive")
        if self.legit_keys < 1 or self.rotating_keys < 1:
            raise ValueError("legit_keys and rotating_keys must be at least 1")
        if not (self.duration > 0 and self.timeout > 0):
            raise ValueError("duration and timeout must be positive")
        if not 0 <= self.returning_share <= 1:
            raise ValueError("returning_share must be between 0 and 1")
        unknown = set(self.scenarios) - set(SCENARIOS)
        if unknown or not self.scenarios:
            raise ValueError(f"flood scenarios are {', '.join(SCENARIOS)}")

    def make_hasher(self) -> Hasher:
        """The hasher the flood runs."""
        return self.hasher if self.hasher is not None else self.profile.hasher(self.algorithm)


@dataclass(frozen=True)
class ClassFigures:
    """What one population saw in one cell."""

    offered: int
    correct: int
    rejected: int
    timed_out: int
    errors: int
    latencies: tuple[float, ...] = field(repr=False)
    hashes_run: int
    wasted: int
    worker_cpu_s: float
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def success(self) -> float:
        """Share of offered logins answered correctly within the timeout."""
        return self.correct / self.offered if self.offered else 1.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready values."""
        return {
            "offered": self.offered,
            "correct": self.correct,
            "success": round(self.success, 4),
            "rejected": self.rejected,
            "timed_out": self.timed_out,
            "errors": self.errors,
            "latency_ms": {
                "p50": round(percentile(self.latencies, 50) * 1000, 1),
                "p99": round(percentile(self.latencies, 99) * 1000, 1),
                "max": round(max(self.latencies, default=0.0) * 1000, 1),
            },
            "hashes_run": self.hashes_run,
            "wasted": self.wasted,
            "worker_cpu_s": round(self.worker_cpu_s, 3),
            "refusals": self.refusals,
        }


@dataclass(frozen=True)
class FloodCell:
    """One variant under one scenario."""

    scenario: str
    variant: str
    classes: dict[str, ClassFigures]
    pool: dict[str, object]
    lag: LagSnapshot
    cpu_share: float

    def flood_cpu_share(self) -> float:
        """The flood's share of the CPU time the workers spent hashing."""
        total = sum(figures.worker_cpu_s for figures in self.classes.values())
        return self.classes["flood"].worker_cpu_s / total if total else 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready values."""
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            **{name: figures.as_dict() for name, figures in self.classes.items()},
            "flood_cpu_share": round(self.flood_cpu_share(), 3),
            "process_cpu_share": round(self.cpu_share, 3),
            "pool": self.pool,
            "lag_ms": self.lag.as_ms(),
        }


@dataclass
class FloodResult:
    """Everything one flood run measured."""

    config: FloodConfig
    machine: dict[str, object]
    algorithm: str = ""
    params: dict[str, int] = field(default_factory=dict)
    cpu_s_per_hash: float = 0.0
    capacity_per_s: float = 0.0
    effective_capacity_per_s: float = 0.0
    load_capacity_per_s: float = 0.0
    max_workers: int = 0
    max_queue_wait: float = 0.0
    unloaded_latencies: tuple[float, ...] = ()
    cells: list[FloodCell] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def unloaded_ms(self) -> float:
        """Median latency of one login on an idle pool, in milliseconds."""
        return statistics.median(self.unloaded_latencies) * 1000 if self.unloaded_latencies else 0.0


@dataclass
class _Tally:
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: {kind: Counter() for kind in CLASSES}
    )
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {kind: [] for kind in CLASSES}
    )

    def answered(self, kind: str, ok: bool, seconds: float) -> None:  # noqa: FBT001 - internal
        self.outcomes[kind]["correct" if ok else "errors"] += 1
        if ok:
            self.latencies[kind].append(seconds)


def _schedule(
    config: FloodConfig, scenario: str, capacity: float, rng: random.Random
) -> list[tuple[float, str, str]]:
    """Return ``(at, kind, key)`` arrivals of both populations, sorted by time."""
    share = config.returning_share if scenario == "devices" else 0.0
    arrivals = []
    for at in poisson_arrivals(config.legit_load * capacity, config.duration, rng):
        number = rng.randrange(config.legit_keys) + 1
        kind = "returning" if share and rng.random() < share else "legit"
        arrivals.append((at, kind, f"10.0.0.{number}"))
    if scenario == BASELINE:
        return arrivals
    flood_keys = 1 if scenario == "single" else config.rotating_keys
    for at in poisson_arrivals(config.flood_load * capacity, config.duration, rng):
        number = rng.randrange(flood_keys)
        arrivals.append((at, "flood", f"10.66.{number >> 8}.{number & 255}"))
    arrivals.sort()
    return arrivals


class _Admitter:
    """How a variant hands a login to the pool: no key, the client's key, or its device's.

    ``devices`` does what a server does: each returning user's browser holds a
    real token bound to its username, verified at every login.
    """

    def __init__(self, variant: str, arrivals: list[tuple[float, str, str]]) -> None:
        self.variant = variant
        self.devices = DeviceCookies(_BENCH_SECRET)
        self.tokens = {
            key: self.devices.issue(f"user-{key}")
            for _, kind, key in arrivals
            if kind == "returning"
        }

    def __call__(self, kind: str, key: str) -> tuple[Key, int]:
        """Return the pool key and priority of one login."""
        if self.variant == "fifo":
            return None, 0
        if self.variant == "keyed":
            return key, 0
        token = self.tokens.get(key) if kind == "returning" else None
        admission = self.devices.admission(token, f"user-{key}", key)
        return admission.key, admission.priority


async def _cell(
    hasher: Hasher,
    account: tuple[str, str],
    arrivals: list[tuple[float, str, str]],
    *,
    variant: str,
    timeout: float,
    pool: HashPool,
) -> tuple[_Tally, _Ledger, LoopLagMonitor, float]:
    ledger = _Ledger()
    tally = _Tally()
    password, encoded = account
    admitted = _Admitter(variant, arrivals)

    def work(caller: _Caller) -> bool:
        cpu = time.thread_time()
        ok, _ = verify_password([hasher], password, encoded)
        ledger.finished(caller, time.thread_time() - cpu)
        return ok

    async def client(kind: str, key: str) -> None:
        caller = _Caller(kind)
        start = time.perf_counter()
        pool_key, priority = admitted(kind, key)
        try:
            # The pool knows the client's deadline, so a call still queued
            # when it passes never runs (as PasswordHash's timeout= does).
            ok = await pool.run(work, caller, key=pool_key, priority=priority, timeout=timeout)
        except TimeoutError:
            caller.gone = True
            tally.outcomes[kind]["timed_out"] += 1
        except Overloaded as refused:
            tally.outcomes[kind]["rejected"] += 1
            tally.outcomes[kind][f"refused:{refused.reason}"] += 1
        else:
            tally.answered(kind, ok, time.perf_counter() - start)

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    async with LoopLagMonitor() as lag:
        start, cpu_start = time.perf_counter(), time.process_time()
        for at, kind, key in arrivals:
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(client(kind, key)))
        await asyncio.gather(*tasks)
        cpu_share = (time.process_time() - cpu_start) / (
            (time.perf_counter() - start) * usable_cpus()
        )
        await settle(lag)
    await pool.aclose()
    return tally, ledger, lag, cpu_share


def _unloaded(hasher: Hasher, account: tuple[str, str], workers: int, nice: int) -> list[float]:
    """Latencies of logins one at a time on an idle pool (after one warm-up)."""
    password, encoded = account

    async def measure() -> list[float]:
        seen = []
        async with HashPool(workers, nice=nice, name="loopsafe-flood-idle") as pool:
            for number in range(6):
                start = time.perf_counter()
                await pool.run(verify_password, [hasher], password, encoded)
                if number:
                    seen.append(time.perf_counter() - start)
        return seen

    return asyncio.run(measure())


def _effective_capacity(hasher: Hasher, account: tuple[str, str], workers: int, nice: int) -> float:
    """Hashes per second of wall time with every worker busy (4 rounds of ``workers`` calls)."""
    password, encoded = account

    async def measure() -> float:
        async with HashPool(
            workers, nice=nice, max_queue_wait=None, name="loopsafe-flood-cap"
        ) as pool:
            calls = 4 * workers
            start = time.perf_counter()
            await asyncio.gather(
                *(pool.run(verify_password, [hasher], password, encoded) for _ in range(calls))
            )
            return calls / (time.perf_counter() - start)

    return asyncio.run(measure())


def _pool_figures(pool: HashPool) -> dict[str, object]:
    stats = pool.statistics()
    figures: dict[str, object] = {
        "admitted": stats.admitted,
        "rejected": stats.rejected,
        "expired": stats.expired,
        "abandoned": stats.abandoned,
    }
    for name in ("shed", "refusals"):
        if hasattr(stats, name):
            value = getattr(stats, name)
            figures[name] = dict(value) if isinstance(value, dict) else value
    return figures


def run_flood(config: FloodConfig, phase: Callable[[str], None] | None = None) -> FloodResult:
    """Measure capacity and unloaded latency, then run each scenario FIFO and keyed."""
    say = phase or (lambda _text: None)
    started = time.perf_counter()
    hasher = config.make_hasher()
    hasher.check_available()
    cores = usable_cpus()
    workers = config.max_workers or cores
    say(f"{hasher.algorithm}: making a stored hash")
    account = make_accounts(hasher, 1, 1, 1)[0]
    say(f"{hasher.algorithm}: measuring the CPU cost of one hash")
    cpu = cpu_seconds(lambda: verify_password([hasher], *account))
    capacity = cores / cpu
    say("effective capacity: every worker busy for 4 rounds")
    effective = _effective_capacity(hasher, account, workers, config.nice)
    load_capacity = effective if config.effective else capacity
    service = workers / load_capacity
    budget = (
        config.max_queue_wait
        if config.max_queue_wait is not None
        else queue_budget(config.timeout, service)
    )
    result = FloodResult(
        config=config,
        machine=machine_info(),
        algorithm=hasher.algorithm,
        params=hasher.params,
        cpu_s_per_hash=cpu,
        capacity_per_s=capacity,
        effective_capacity_per_s=effective,
        load_capacity_per_s=load_capacity,
        max_workers=workers,
        max_queue_wait=budget,
    )
    say("unloaded latency: 5 logins one at a time")
    result.unloaded_latencies = tuple(_unloaded(hasher, account, workers, config.nice))
    plan: list[tuple[str, tuple[str, ...]]] = []
    if config.baseline:
        plan.append((BASELINE, ("keyed",)))
    for number, scenario in enumerate(config.scenarios):
        variants = SCENARIO_VARIANTS[scenario]
        plan.append((scenario, variants if number % 2 == 0 else tuple(reversed(variants))))
    for number, (scenario, order) in enumerate(plan):
        rng = random.Random(config.seed * 100 + number)
        arrivals = _schedule(config, scenario, load_capacity, rng)
        for variant in order:
            say(f"{scenario} flood / {variant}: {len(arrivals)} logins in {config.duration:g} s")
            pool = HashPool(workers, max_queue_wait=budget, nice=config.nice, name="loopsafe-flood")
            tally, ledger, lag, cpu_share = asyncio.run(
                _cell(
                    hasher,
                    account,
                    arrivals,
                    variant=variant,
                    timeout=config.timeout,
                    pool=pool,
                )
            )
            classes = {
                kind: ClassFigures(
                    offered=sum(1 for arrival in arrivals if arrival[1] == kind),
                    correct=tally.outcomes[kind]["correct"],
                    rejected=tally.outcomes[kind]["rejected"],
                    timed_out=tally.outcomes[kind]["timed_out"],
                    errors=tally.outcomes[kind]["errors"],
                    latencies=tuple(tally.latencies[kind]),
                    hashes_run=ledger.ran_by[kind],
                    wasted=ledger.wasted_by[kind],
                    worker_cpu_s=ledger.cpu_by.get(kind, 0.0),
                    refusals={
                        name.removeprefix("refused:"): count
                        for name, count in sorted(tally.outcomes[kind].items())
                        if name.startswith("refused:")
                    },
                )
                for kind in CLASSES
            }
            result.cells.append(
                FloodCell(
                    scenario=scenario,
                    variant=variant,
                    classes=classes,
                    pool=_pool_figures(pool),
                    lag=lag.snapshot(),
                    cpu_share=cpu_share,
                )
            )
    result.elapsed_s = time.perf_counter() - started
    return result


def flood_table(result: FloodResult) -> str:
    """The run as a plain-text table, one line per cell."""
    config = result.config
    unloaded = result.unloaded_ms
    lines = [
        (
            f"{result.algorithm} {result.params}: {result.cpu_s_per_hash * 1000:.0f} ms CPU "
            f"per hash, capacity {result.capacity_per_s:.2f}/s on "
            f"{result.machine['usable_cpus']} cores (effective, measured: "
            f"{result.effective_capacity_per_s:.2f}/s); pool {result.max_workers} workers, "
            f"max_queue_wait {result.max_queue_wait:g} s"
        ),
        (
            f"loads x {'effective' if config.effective else 'CPU'} capacity: "
            f"flood {config.flood_load:g}x, {config.legit_keys} legitimate keys "
            f"{config.legit_load:g}x together, client timeout {config.timeout:g} s, "
            f"{config.duration:g} s per cell; unloaded login {unloaded:.0f} ms (median)"
        ),
        "",
        (
            f"{'scenario':9} {'variant':7} {'back ok':>8} {'back p99':>8} {'legit ok':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} "
            f"{'p99/idle':>8} {'refused':>7} {'late':>5} {'flood ok':>9} {'flood cpu':>9} "
            f"{'wasted':>6} {'lag max':>7}"
        ),
    ]
    for cell in result.cells:
        legit, flood = cell.classes["legit"], cell.classes["flood"]
        back = cell.classes["returning"]
        p99 = percentile(legit.latencies, 99) * 1000
        back_ok = f"{back.success:8.1%}" if back.offered else f"{'-':>8}"
        back_p99 = (
            f"{percentile(back.latencies, 99) * 1000:8.0f}" if back.latencies else f"{'-':>8}"
        )
        lines.append(
            f"{cell.scenario:9} {cell.variant:7} {back_ok} {back_p99} {legit.success:9.1%} "
            f"{percentile(legit.latencies, 50) * 1000:7.0f} {p99:7.0f} "
            f"{(p99 / unloaded if unloaded else 0):8.2f} {legit.rejected:7d} "
            f"{legit.timed_out:5d} {flood.success:9.1%} {cell.flood_cpu_share():9.1%} "
            f"{legit.wasted + flood.wasted + back.wasted:6d} {cell.lag.as_ms()['max_ms']:6.1f}ms"
        )
    lines.append("")
    for cell in result.cells:
        legit, flood = cell.classes["legit"], cell.classes["flood"]
        lines.append(
            f"{cell.scenario:9} {cell.variant:7} refusals legit {legit.refusals or '-'} "
            f"flood {flood.refusals or '-'}; shed {cell.pool.get('shed', 0)}"
        )
    lines.append(f"({result.elapsed_s:.0f} s)")
    return "\n".join(lines)


def flood_document(result: FloodResult, command: str) -> dict[str, object]:
    """The run as a JSON-ready document."""
    config = result.config
    return {
        "command": command,
        "machine": result.machine,
        "algorithm": result.algorithm,
        "params": result.params,
        "cpu_s_per_hash": round(result.cpu_s_per_hash, 4),
        "capacity_per_s": round(result.capacity_per_s, 3),
        "effective_capacity_per_s": round(result.effective_capacity_per_s, 3),
        "loads_relative_to": "effective" if config.effective else "cpu",
        "max_workers": result.max_workers,
        "max_queue_wait": result.max_queue_wait,
        "flood_load": config.flood_load,
        "legit_load": config.legit_load,
        "legit_keys": config.legit_keys,
        "rotating_keys": config.rotating_keys,
        "returning_share": config.returning_share,
        "duration_s": config.duration,
        "timeout_s": config.timeout,
        "unloaded_ms": round(result.unloaded_ms, 1),
        "cells": [cell.as_dict() for cell in result.cells],
        "elapsed_s": round(result.elapsed_s, 1),
    }
