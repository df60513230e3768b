"""Overload soak: a minute at 4x capacity, and proof that nothing was lost or leaked.

Measures capacity first (docs/measuring.md: usable cores / CPU-seconds per hash),
then offers an open-loop Poisson stream of logins at ``--load`` times that
rate to a `PasswordHash` on a `HashPool`, from three kinds of client:

* fast clients, with a short timeout (2 s, the reference client of docs/measuring.md; in
  ``--quick`` it equals the queue budget, so calls admitted at its edge expire),
* slow clients, with a long timeout (a batch job),
* clients that cancel early (a user closing the tab).

Every second it samples RSS, thread count and task count. At the end, after
the last client has its answer, it checks that every admitted call was
answered (client-side outcome counts against ``pool.statistics()``), that
``Overloaded`` came only when the admission budget said so, and that memory,
threads and tasks came back down. It prints the figures and exits non-zero if
a check failed.

    python benchmarks/soak.py                 # ~60 s, PBKDF2 at Django 6.1 defaults
    python benchmarks/soak.py --quick         # ~12 s, PBKDF2 sized to ~25 ms a hash
    python benchmarks/soak.py --algorithm argon2 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import psutil

from loopsafe import (
    Hasher,
    HashPool,
    LoopLagMonitor,
    Overloaded,
    PasswordHash,
    PBKDF2Hasher,
    PoolClosed,
    profiles,
    usable_cpus,
)

PASSWORD = "soak-password"
MIB = 2**20


@dataclass
class SoakConfig:
    """What to run: the hasher, the load, the client mix and the pool's budget."""

    hasher: Hasher
    duration: float = 60.0
    load: float = 4.0
    fast_share: float = 0.5
    slow_share: float = 0.3  # the rest cancel early
    fast_timeout: float = 2.0  # the reference client timeout (docs/measuring.md)
    slow_timeout: float = 30.0
    cancel_after: tuple[float, float] = (0.0, 0.5)
    wrong_share: float = 0.1
    max_queue_wait: float = 0.5
    max_pending: int = 256
    max_workers: int | None = None
    seed: int = 20760


@dataclass
class SoakResult:
    """Every figure the soak measured, and the checks that failed (if any)."""

    algorithm: str
    cores: int
    cpu_per_hash: float
    capacity: float
    offered_rate: float
    duration: float
    issued: int
    admitted_client: int
    outcomes: dict[str, int]
    pool: dict[str, object]
    late_races: int
    throughput_ratio: float
    goodput_ratio: float
    rejections_checked: int
    rejections_outside_budget: int
    rejection_wait_range: tuple[float, float]
    admitted_latency_p50: float
    admitted_latency_p99: float
    rss_baseline_mib: float
    rss_peak_mib: float
    rss_end_mib: float
    threads_baseline: int
    threads_peak: int
    threads_end: int
    tasks_baseline: int
    tasks_peak: int
    tasks_end: int
    lag_ms: dict[str, float]
    drain_seconds: float
    samples: list[dict[str, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def cpu_seconds_per_hash(hasher: Hasher, runs: int = 3) -> float:
    """CPU seconds of one hash (docs/measuring.md): process_time, median of ``runs``."""
    encoded = hasher.hash(PASSWORD)
    hasher.verify(PASSWORD, encoded)
    costs = []
    for _ in range(runs):
        start = time.process_time()
        hasher.verify(PASSWORD, encoded)
        costs.append(time.process_time() - start)
    return statistics.median(costs)


def pbkdf2_sized(target_seconds: float) -> PBKDF2Hasher:
    """Return a PBKDF2 hasher whose hash takes about ``target_seconds`` of CPU here."""
    probe = 20_000
    cost = cpu_seconds_per_hash(PBKDF2Hasher(iterations=probe))
    iterations = max(1_000, int(probe * target_seconds / max(cost, 1e-6)))
    return PBKDF2Hasher(iterations=iterations)


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


async def run_soak(config: SoakConfig) -> SoakResult:  # noqa: C901, PLR0915 - one linear story
    """Run the soak on the running asyncio loop and return its figures."""
    rng = random.Random(config.seed)
    hasher = config.hasher
    cores = usable_cpus()
    cpu = cpu_seconds_per_hash(hasher)
    capacity = cores / cpu
    rate = config.load * capacity
    pool = HashPool(
        config.max_workers,
        max_queue_wait=config.max_queue_wait,
        max_pending=config.max_pending,
        name="soak",
    )
    ph = PasswordHash([hasher], pool=pool)
    stored = hasher.hash(PASSWORD)

    gc.collect()
    rss0 = _rss()
    threads0 = threading.active_count()
    tasks0 = len(asyncio.all_tasks())
    samples: list[dict[str, float]] = []
    outcomes: Counter[str] = Counter()
    rejections: list[tuple[float, int]] = []
    latencies: list[float] = []
    good = 0
    clients: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def client(kind: str) -> None:
        nonlocal good
        wrong = rng.random() < config.wrong_share
        password = "not-the-password" if wrong else PASSWORD
        timeout = config.fast_timeout if kind == "fast" else config.slow_timeout
        begun = loop.time()
        if kind == "cancel":
            task = asyncio.current_task()
            assert task is not None  # noqa: S101 - inside a task by construction
            loop.call_later(rng.uniform(*config.cancel_after), task.cancel)
        try:
            ok = await ph.averify(password, stored, timeout=timeout)
        except Overloaded as refused:
            outcomes["overloaded"] += 1
            rejections.append((refused.estimated_wait, refused.queued))
            return
        except PoolClosed:
            outcomes["closed"] += 1
            return
        except TimeoutError:
            outcomes["timeout"] += 1
            return
        except asyncio.CancelledError:
            outcomes["cancelled"] += 1
            return
        except Exception:  # noqa: BLE001 - counted, and a failure below
            outcomes["error"] += 1
            return
        elapsed = loop.time() - begun
        latencies.append(elapsed)
        if ok is (not wrong):
            outcomes["answered"] += 1
            good += elapsed <= timeout
        else:
            outcomes["wrong-answer"] += 1

    async def sampler() -> None:
        while True:
            stats = pool.statistics()
            samples.append(
                {
                    "t": round(loop.time() - start, 2),
                    "rss_mib": round(_rss() / MIB, 1),
                    "threads": threading.active_count(),
                    "tasks": len(asyncio.all_tasks()),
                    "queued": stats.queued,
                    "running": stats.running,
                }
            )
            await asyncio.sleep(1.0)

    issued = 0
    limit = int(rate * config.duration * 2) + 10  # a hard cap on the schedule
    async with LoopLagMonitor() as lag:
        sampling = asyncio.ensure_future(sampler())
        next_at = loop.time()
        end = start + config.duration
        while issued < limit:
            next_at += rng.expovariate(rate)
            if next_at >= end:
                break
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            draw = rng.random()
            if draw < config.fast_share:
                kind = "fast"
            elif draw < config.fast_share + config.slow_share:
                kind = "slow"
            else:
                kind = "cancel"
            task = asyncio.ensure_future(client(kind))
            clients.add(task)
            task.add_done_callback(clients.discard)
            issued += 1
        arrivals_end = loop.time()
        drain_start = loop.time()
        if clients:
            await asyncio.wait(set(clients), timeout=config.slow_timeout + 10)
        # A cancelled caller returns at once while its call, if already running,
        # finishes on the worker (abandoned): wait for those too, bounded.
        settle_by = loop.time() + 10 + 20 * cpu
        while loop.time() < settle_by:
            now = pool.statistics()
            if now.running == 0 and now.queued == 0:
                break
            await asyncio.sleep(0.01)
        drain = loop.time() - drain_start
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    gc.collect()
    stats = pool.statistics()
    stuck = len(clients)
    await pool.aclose()
    threads_end = threading.active_count()
    tasks_end = len(asyncio.all_tasks())
    rss_end = _rss()
    elapsed = arrivals_end - start

    admitted_client = issued - outcomes["overloaded"] - outcomes["closed"]
    # A result can arrive in the same loop iteration as the caller's timeout or
    # cancel: the pool counts it completed, the caller saw TimeoutError/Cancelled.
    client_results = outcomes["answered"] + outcomes["wrong-answer"] + outcomes["error"]
    late_races = stats.completed - client_results
    outside = [
        (wait, queued)
        for wait, queued in rejections
        if not (
            (config.max_queue_wait is not None and wait > config.max_queue_wait)
            or queued >= config.max_pending
        )
    ]
    failures: list[str] = []

    def check(ok: bool, message: str) -> None:  # noqa: FBT001 - a local assertion helper
        if not ok:
            failures.append(message)

    check(stuck == 0, f"{stuck} clients never got an answer")
    check(
        stats.admitted == admitted_client,
        f"pool admitted {stats.admitted}, clients {admitted_client}",
    )
    check(
        stats.admitted == stats.completed + stats.cancelled + stats.expired,
        f"admitted {stats.admitted} != completed+cancelled+expired "
        f"{stats.completed}+{stats.cancelled}+{stats.expired}",
    )
    check(
        stats.running == 0 and stats.queued == 0, f"running={stats.running} queued={stats.queued}"
    )
    check(
        stats.rejected == outcomes["overloaded"],
        f"rejected {stats.rejected} vs {outcomes['overloaded']}",
    )
    check(
        late_races >= 0,
        f"clients saw {client_results} results but the pool completed {stats.completed}",
    )
    check(
        outcomes["timeout"] + outcomes["cancelled"] == stats.expired + stats.cancelled + late_races,
        "client timeouts+cancels do not match the pool's expired+cancelled(+late races)",
    )
    check(
        outcomes["error"] == 0 and outcomes["wrong-answer"] == 0, f"bad answers: {dict(outcomes)}"
    )
    check(not outside, f"{len(outside)} Overloaded outside the budget, e.g. {outside[:3]}")
    peak_threads = max([s["threads"] for s in samples] + [threads0])
    max_workers = pool.max_workers
    check(peak_threads <= threads0 + max_workers, f"threads peaked at {peak_threads}")
    check(threads_end <= threads0, f"threads {threads0} -> {threads_end}")
    check(tasks_end <= tasks0, f"tasks {tasks0} -> {tasks_end}")
    peak_rss = max([s["rss_mib"] for s in samples] + [rss0 / MIB])
    lat = sorted(latencies)
    waits = [wait for wait, _ in rejections]
    return SoakResult(
        algorithm=hasher.algorithm,
        cores=cores,
        cpu_per_hash=cpu,
        capacity=capacity,
        offered_rate=issued / elapsed if elapsed > 0 else 0.0,
        duration=elapsed,
        issued=issued,
        admitted_client=admitted_client,
        outcomes=dict(outcomes),
        pool={k: v for k, v in asdict(stats).items() if k != "mean_service_time"}
        | {"mean_service_time": stats.mean_service_time},
        late_races=late_races,
        throughput_ratio=stats.completed / elapsed / capacity if elapsed > 0 else 0.0,
        goodput_ratio=good / elapsed / capacity if elapsed > 0 else 0.0,
        rejections_checked=len(rejections),
        rejections_outside_budget=len(outside),
        rejection_wait_range=(min(waits, default=0.0), max(waits, default=0.0)),
        admitted_latency_p50=lat[len(lat) // 2] if lat else 0.0,
        admitted_latency_p99=lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        rss_baseline_mib=rss0 / MIB,
        rss_peak_mib=peak_rss,
        rss_end_mib=rss_end / MIB,
        threads_baseline=threads0,
        threads_peak=int(peak_threads),
        threads_end=threads_end,
        tasks_baseline=tasks0,
        tasks_peak=int(max([s["tasks"] for s in samples] + [tasks0])),
        tasks_end=tasks_end,
        lag_ms=lag.snapshot().as_ms(),
        drain_seconds=drain,
        samples=samples,
        failures=failures,
    )


def format_result(result: SoakResult, config: SoakConfig) -> str:
    """Render the figures as a few readable lines."""
    o, p, r = result.outcomes, result.pool, result
    mix = (
        f"{config.fast_share:.0%} fast {config.fast_timeout}s, {config.slow_share:.0%} slow "
        f"{config.slow_timeout}s, rest cancel in {config.cancel_after}s"
    )
    lines = [
        (
            f"soak: {r.algorithm}, {r.cores} cores, {r.cpu_per_hash * 1000:.1f} ms CPU a hash, "
            f"capacity {r.capacity:.1f}/s"
        ),
        (
            f"  offered {r.offered_rate:.1f}/s = {r.offered_rate / r.capacity:.2f}x capacity "
            f"for {r.duration:.1f} s (open-loop Poisson; {mix})"
        ),
        (
            f"  issued {r.issued}: admitted {r.admitted_client} (pool {p['admitted']}), "
            f"overloaded {o.get('overloaded', 0)} (pool {p['rejected']})"
        ),
        (
            f"  admitted answered: results {o.get('answered', 0)}, timeouts "
            f"{o.get('timeout', 0)}, cancelled {o.get('cancelled', 0)}, errors "
            f"{o.get('error', 0)}, wrong {o.get('wrong-answer', 0)}; pool completed "
            f"{p['completed']} + cancelled {p['cancelled']} + expired {p['expired']} "
            f"(abandoned {p['abandoned']}); late races {r.late_races}"
        ),
        (
            f"  throughput {r.throughput_ratio:.2f}x capacity, goodput {r.goodput_ratio:.2f}x; "
            f"admitted latency p50 {r.admitted_latency_p50 * 1000:.0f} ms "
            f"p99 {r.admitted_latency_p99 * 1000:.0f} ms"
        ),
        (
            f"  Overloaded: {r.rejections_checked} checked against max_queue_wait="
            f"{config.max_queue_wait}s/max_pending={config.max_pending}, "
            f"{r.rejections_outside_budget} outside the budget; estimated waits refused "
            f"{r.rejection_wait_range[0]:.3f}-{r.rejection_wait_range[1]:.3f} s"
        ),
        (
            f"  RSS baseline {r.rss_baseline_mib:.1f} MiB, peak {r.rss_peak_mib:.1f} "
            f"(+{r.rss_peak_mib - r.rss_baseline_mib:.1f}), end {r.rss_end_mib:.1f}"
        ),
        (
            f"  threads {r.threads_baseline} -> peak {r.threads_peak} -> {r.threads_end}; "
            f"tasks {r.tasks_baseline} -> peak {r.tasks_peak} -> {r.tasks_end}; "
            f"drain {r.drain_seconds:.2f} s"
        ),
        (
            f"  loop lag ms: p50 {r.lag_ms['p50_ms']:.2f} p99 {r.lag_ms['p99_ms']:.2f} "
            f"max {r.lag_ms['max_ms']:.2f}"
        ),
        "  checks: " + ("all passed" if not r.failures else "; ".join(r.failures)),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the soak, print its figures; exit 1 if a check failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~12 s with a ~25 ms PBKDF2")
    parser.add_argument(
        "--algorithm",
        default="pbkdf2_sha256",
        help="a Django 6.1 default hasher (pbkdf2_sha256, argon2, bcrypt_sha256, scrypt)",
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds of arrivals")
    parser.add_argument("--load", type=float, default=4.0, help="offered load / capacity")
    parser.add_argument("--seed", type=int, default=20760)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    if args.quick:
        hasher: Hasher = pbkdf2_sized(0.025)
        config = SoakConfig(
            hasher,
            duration=args.duration or 12.0,
            load=args.load,
            fast_timeout=0.25,
            slow_timeout=5.0,
            cancel_after=(0.0, 0.2),
            max_queue_wait=0.25,
            seed=args.seed,
        )
    else:
        hashers = {h.algorithm: h for h in profiles.DJANGO_6_1.hashers()}
        hasher = hashers[args.algorithm]
        config = SoakConfig(hasher, duration=args.duration or 60.0, load=args.load, seed=args.seed)
    result = asyncio.run(run_soak(config))
    print(format_result(result, config))
    if args.json:
        print(json.dumps(asdict(result) | {"hasher": repr(config.hasher)}, default=str))
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
