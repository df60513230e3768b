"""examples/fastapi_app.py, unchanged, plus what benchmarks/host_budget.py reads from each worker.

- ``GET /bench/health`` answers like ``/health`` with the worker's pid, so
  ``/health`` latency can be told apart per worker.
- A daemon thread in each worker samples the default pool every 5 ms and writes
  ``$BENCH_DIR/<pid>.json``: the pool's counters now (abandoned = wasted
  hashes), the most calls it ever ran at once, and a timeline of
  ``(time, running, host slots held)`` changes, from which the benchmark sums
  the hashes running at once on the whole host.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.fastapi_app import app

from loopsafe import default_pool

__all__ = ["app"]

_OUT = Path(os.environ.get("BENCH_DIR", "."))


@app.get("/bench/health")
async def bench_health() -> dict[str, int]:
    """Answer at once, naming the worker."""
    return {"pid": os.getpid()}


def _sample() -> None:
    pid = os.getpid()
    timeline: list[tuple[float, int, int]] = []
    last: tuple[int, int] = (-1, -1)
    peak_running = 0
    written = 0.0
    while True:
        stats = default_pool().statistics()
        now = time.time()
        point = (stats.running, stats.host_held)
        peak_running = max(peak_running, stats.running)
        if point != last:
            timeline.append((now, *point))
            last = point
        if now - written > 0.05:  # noqa: PLR2004
            data = {
                "pid": pid,
                "stats": {
                    key: getattr(stats, key)
                    for key in ("completed", "abandoned", "expired", "rejected", "admitted")
                },
                "host_limit": stats.host_limit,
                "peak_running": peak_running,
                "timeline": timeline[-20000:],
            }
            tmp = _OUT / f".{pid}.tmp"
            tmp.write_text(json.dumps(data))
            tmp.replace(_OUT / f"{pid}.json")
            written = now
        time.sleep(0.005)


threading.Thread(target=_sample, name="bench-sampler", daemon=True).start()
