"""Argon2's lanes under loopsafe's pool: throughput and loop lag per parallelism, per nice.

Django's Argon2 hasher uses parallelism=8: argon2-cffi fills the 8 lanes with
8 threads. loopsafe's pool already runs one hash per usable CPU, so on a
2-core machine two hashes put 16 memory-hungry threads against the event
loop's one. This runs the same burst of verifications through a `HashPool`
for each lane count (and each worker priority) and prints per-hash wall time,
the share of the machine used, and the loop's lag, all in one run so the
figures compare.

    python benchmarks/argon2_lanes.py                      # 100 MiB, t=2: Django's memory and time
    python benchmarks/argon2_lanes.py --lanes 8 2 1 --nice 0 10 --hashes 60 --repeat 2
    python benchmarks/argon2_lanes.py --quick              # seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loopsafe import Argon2Hasher, HashPool, LoopLagMonitor, usable_cpus


@dataclass(frozen=True)
class Row:
    """One (lanes, nice) cell, medians over the repetitions."""

    lanes: int
    nice: int
    service_ms: float
    cpu_share: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float


async def burst(hasher: Argon2Hasher, hashes: int, nice: int) -> tuple[float, ...]:
    """Verify ``hashes`` times on a fresh pool.

    Returns the service time (seconds a hash held a worker), the CPU share,
    and the loop lag's p50, p99 and max.
    """
    encoded = hasher.hash("correct horse")
    pool = HashPool(max_queue_wait=None, nice=nice, name="argon2-lanes")
    await pool.run(hasher.verify, "correct horse", encoded)  # start the workers
    async with LoopLagMonitor() as lag:
        start, cpu_start = time.perf_counter(), time.process_time()
        answers = await asyncio.gather(
            *(pool.run(hasher.verify, "correct horse", encoded) for _ in range(hashes))
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    await pool.aclose()
    if not all(answers):
        raise SystemExit("a verification failed")
    snap = lag.snapshot()
    share = cpu / (wall * usable_cpus())
    return wall / hashes * pool.max_workers, share, snap.p50, snap.p99, snap.max


def main(argv: list[str] | None = None) -> int:
    """Run every (lanes, nice) cell ``--repeat`` times, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-mib", type=int, default=100, help="memory_cost in MiB")
    parser.add_argument("--time-cost", type=int, default=2)
    parser.add_argument("--lanes", type=int, nargs="+", default=[8, 2, 1])
    parser.add_argument("--nice", type=int, nargs="+", default=[10, 0])
    parser.add_argument("--hashes", type=int, default=60, help="verifications per burst")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="8 MiB, 12 hashes, 1 repeat")
    parser.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.memory_mib, args.hashes, args.repeat = 8, 12, 1
    cells = [(lanes, nice) for nice in args.nice for lanes in args.lanes]
    seen: dict[tuple[int, int], list[tuple[float, ...]]] = {cell: [] for cell in cells}
    for repetition in range(args.repeat):
        order = cells if repetition % 2 == 0 else list(reversed(cells))
        for lanes, nice in order:
            hasher = Argon2Hasher(
                time_cost=args.time_cost, memory_cost=args.memory_mib * 1024, parallelism=lanes
            )
            figures = asyncio.run(burst(hasher, args.hashes, nice))
            seen[lanes, nice].append(figures)
            print(f"  lanes={lanes} nice={nice}: lag p99 {figures[3] * 1e3:.2f} ms", flush=True)
    rows = []
    for (lanes, nice), runs in seen.items():
        per_hash, share, p50, p99, worst = (
            statistics.median(col) for col in zip(*runs, strict=True)
        )
        rows.append(Row(lanes, nice, per_hash * 1e3, share, p50 * 1e3, p99 * 1e3, worst * 1e3))
    print(
        f"\nArgon2id m={args.memory_mib} MiB t={args.time_cost}, {args.hashes} verifications per "
        f"burst on {usable_cpus()} usable cores, medians of {args.repeat}\n"
    )
    print("lanes  nice  service ms  CPU share  lag p50 ms  lag p99 ms  lag max ms")
    for row in rows:
        print(
            f"{row.lanes:>5}  {row.nice:>4}  {row.service_ms:>10.0f}  {row.cpu_share:>9.2f}"
            f"  {row.lag_p50_ms:>10.2f}  {row.lag_p99_ms:>10.2f}  {row.lag_max_ms:>10.2f}"
        )
    if args.json:
        document = {"config": vars(args), "rows": [asdict(r) for r in rows]}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
