"""Argon2's lanes under loopsafe's pool: throughput and loop lag per way of computing them.

Django's Argon2 hasher uses parallelism=8, and argon2-cffi fills the 8 lanes
with 8 threads. loopsafe's pool already runs one hash per usable CPU, so on a
2-core machine that was 16 memory-hungry threads against the event loop's
one. loopsafe now computes the lanes on the worker's own thread, in memory
it maps with huge pages for each hash. This runs the same burst of
verifications through a `HashPool` for each way of computing (``--compute``),
lane count and worker priority, interleaved, and prints the CPU time per
hash, per-hash wall time, the share of the machine used, and the loop's lag:

``lane-threads``
    argon2-cffi's ``verify_secret``: one thread per lane, memory from malloc
    for every hash (what loopsafe did before, and Django does).
``one-thread-malloc``
    loopsafe's core with one thread, memory from malloc for every hash.
``one-thread``
    loopsafe's default: one thread, each hash maps its memory with huge pages
    and unmaps it after (nothing stays resident between hashes).
``kept-memory``
    one thread, and the block memory kept between hashes (``keep_memory``).

    python benchmarks/argon2_lanes.py                      # 100 MiB, t=2: Django's memory and time
    python benchmarks/argon2_lanes.py --lanes 8 2 1 --nice 0 10 --hashes 60 --repeat 2
    python benchmarks/argon2_lanes.py --quick              # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from argon2.exceptions import VerificationError
from argon2.low_level import Type, verify_secret

from loopsafe import Argon2Hasher, HashPool, LoopLagMonitor, usable_cpus
from loopsafe.hashers import _argon2_core

if TYPE_CHECKING:
    from collections.abc import Callable

COMPUTE = ("lane-threads", "one-thread-malloc", "one-thread", "kept-memory")


@dataclass(frozen=True)
class Row:
    """One (compute, lanes, nice) cell, medians over the repetitions."""

    compute: str
    lanes: int
    nice: int
    cpu_ms: float
    service_ms: float
    cpu_share: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float


def _verifier(compute: str, encoded: str) -> Callable[[], bool]:
    """A verification of "correct horse" against ``encoded``, computed the ``compute`` way."""
    phc = encoded.removeprefix("argon2").encode("ascii")
    if compute == "lane-threads":

        def lane_threads() -> bool:
            try:
                return verify_secret(phc, b"correct horse", Type.ID)
            except VerificationError:
                return False

        return lane_threads
    return lambda: _argon2_core.verify_encoded(phc, b"correct horse", Type.ID, threads=1)


async def burst(compute: str, hasher: Argon2Hasher, hashes: int, nice: int) -> tuple[float, ...]:
    """Verify ``hashes`` times on a fresh pool.

    Returns the CPU seconds per hash, the service time (seconds a hash held a
    worker), the CPU share, and the loop lag's p50, p99 and max.
    """
    encoded = hasher.hash("correct horse")
    verify = _verifier(compute, encoded)
    pool = HashPool(max_queue_wait=None, nice=nice, name="argon2-lanes")
    # Memory is kept for the pool's workers, or for nobody; malloc for the baselines.
    _argon2_core.keep_memory(pool.max_workers if compute == "kept-memory" else 0)
    _argon2_core._arena.enabled = compute not in {"lane-threads", "one-thread-malloc"}  # noqa: SLF001
    await asyncio.gather(*(pool.run(verify) for _ in range(pool.max_workers)))  # warm up
    async with LoopLagMonitor() as lag:
        start, cpu_start = time.perf_counter(), time.process_time()
        answers = await asyncio.gather(*(pool.run(verify) for _ in range(hashes)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    await pool.aclose()
    if not all(answers):
        raise SystemExit("a verification failed")
    snap = lag.snapshot()
    share = cpu / (wall * usable_cpus())
    return cpu / hashes, wall / hashes * pool.max_workers, share, snap.p50, snap.p99, snap.max


def main(argv: list[str] | None = None) -> int:
    """Run every (lanes, nice) cell ``--repeat`` times, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mib", type=int, default=100, help="memory_cost in MiB")
    parser.add_argument("--time-cost", type=int, default=2)
    parser.add_argument("--compute", nargs="+", choices=COMPUTE, default=list(COMPUTE))
    parser.add_argument("--lanes", type=int, nargs="+", default=[8])
    parser.add_argument("--nice", type=int, nargs="+", default=[10, 0])
    parser.add_argument("--hashes", type=int, default=60, help="verifications per burst")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="8 MiB, 12 hashes, 1 repeat")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.memory_mib, args.hashes, args.repeat = 8, 12, 1
    cells = [
        (compute, lanes, nice)
        for nice in args.nice
        for lanes in args.lanes
        for compute in args.compute
    ]
    seen: dict[tuple[str, int, int], list[tuple[float, ...]]] = {cell: [] for cell in cells}
    for repetition in range(args.repeat):
        order = cells if repetition % 2 == 0 else list(reversed(cells))
        for compute, lanes, nice in order:
            hasher = Argon2Hasher(
                time_cost=args.time_cost, memory_cost=args.memory_mib * 1024, parallelism=lanes
            )
            figures = asyncio.run(burst(compute, hasher, args.hashes, nice))
            seen[compute, lanes, nice].append(figures)
            print(
                f"  {compute} lanes={lanes} nice={nice}: CPU {figures[0] * 1e3:.0f} ms/hash, "
                f"share {figures[2]:.2f}, lag p99 {figures[4] * 1e3:.2f} ms, "
                f"max {figures[5] * 1e3:.2f} ms, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    rows = []
    for (compute, lanes, nice), runs in seen.items():
        cpu, per_hash, share, p50, p99, worst = (
            statistics.median(col) for col in zip(*runs, strict=True)
        )
        rows.append(
            Row(
                compute,
                lanes,
                nice,
                cpu * 1e3,
                per_hash * 1e3,
                share,
                p50 * 1e3,
                p99 * 1e3,
                worst * 1e3,
            )
        )
    print(
        f"\nArgon2id m={args.memory_mib} MiB t={args.time_cost}, {args.hashes} verifications per "
        f"burst on {usable_cpus()} usable cores, medians of {args.repeat}\n"
    )
    print(
        "compute            lanes  nice  CPU ms/hash  service ms  CPU share"
        "  lag p50 ms  lag p99 ms  lag max ms"
    )
    for row in rows:
        print(
            f"{row.compute:<17}  {row.lanes:>5}  {row.nice:>4}  {row.cpu_ms:>11.0f}"
            f"  {row.service_ms:>10.0f}  {row.cpu_share:>9.2f}"
            f"  {row.lag_p50_ms:>10.2f}  {row.lag_p99_ms:>10.2f}  {row.lag_max_ms:>10.2f}"
        )
    if args.json:
        document = {"config": vars(args), "rows": [asdict(r) for r in rows]}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
