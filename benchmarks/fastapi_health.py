"""/health latency of the FastAPI example during a 20-login burst, with and without loopsafe.

Variants (each a fresh uvicorn process on 127.0.0.1, on a free port, serving
``examples/fastapi_app.py`` with real default parameters):

- ``pwdlib``: ``USE_LOOPSAFE=0``, the FastAPI tutorial's way: pwdlib's
  ``PasswordHash.recommended()`` (Argon2id t=3, m=64 MiB, p=4) called
  synchronously inside ``async def``;
- ``loopsafe``: loopsafe's ``PasswordHash.recommended()`` (Argon2id at Django's
  defaults: t=2, m=100 MiB, p=8) on the pool, every call admitted
  (``LOOPSAFE_MAX_QUEUE_WAIT=none``), so it does all 20 hashes like pwdlib;
- ``loopsafe-1s``: the same with the default 1 s admission budget: what does
  not fit is refused at once with 503 + Retry-After.

A separate load process (httpx) signs one user up, then sends 20 concurrent
logins while probing /health every 10 ms until the burst is answered (bounded
by count and time). Rounds rotate the variants' order; the summary gives the
median over rounds of each figure, as docs/measuring.md asks. The CPU cost of one
verification with each parameter set is measured first, in this process,
because the two libraries' defaults differ.

    python benchmarks/fastapi_health.py [--rounds 3] [--logins 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pwdlib import PasswordHash as PwdlibHash

from loopsafe import PasswordHash

ROOT = Path(__file__).resolve().parent.parent
PROBE_EVERY = 0.01
MAX_PROBES = 3000
BURST_LIMIT = 120.0
VARIANTS = {
    "pwdlib": {"USE_LOOPSAFE": "0"},
    "loopsafe": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"},
    "loopsafe-1s": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"},
}

LOAD = r"""
import asyncio, json, sys, time
import httpx

async def main(base, logins, every, max_probes, limit):
    async with httpx.AsyncClient(base_url=base, timeout=limit) as client:
        form = {"username": "ada", "password": "correct horse battery staple"}
        r = await client.post("/signup", json=form)
        assert r.status_code == 201, r.status_code
        lat, statuses, done = [], [], asyncio.Event()

        async def login():
            statuses.append((await client.post("/login", json=form)).status_code)

        async def burst():
            await asyncio.gather(*(login() for _ in range(logins)))
            done.set()

        async def probe():
            end = time.monotonic() + limit
            while not done.is_set() and len(lat) < max_probes and time.monotonic() < end:
                t = time.perf_counter()
                await client.get("/health")
                lat.append(time.perf_counter() - t)
                await asyncio.sleep(every)

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(burst(), probe()), limit)
        print(json.dumps({"lat": lat, "statuses": statuses, "burst": time.perf_counter() - t0}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]),
                 float(sys.argv[5])))
"""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, server: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until the server accepts connections."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("uvicorn exited at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not start")


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def cpu_per_verify() -> dict[str, float]:
    """CPU seconds of one verification, each library's recommended() defaults (median of 3)."""
    out = {}
    for name, hasher in (
        ("pwdlib", PwdlibHash.recommended()),
        ("loopsafe", PasswordHash.recommended()),
    ):
        encoded = hasher.hash("correct horse battery staple")
        hasher.verify("correct horse battery staple", encoded)  # warm-up
        costs = []
        for _ in range(3):
            start = time.process_time()
            hasher.verify("correct horse battery staple", encoded)
            costs.append(time.process_time() - start)
        out[name] = statistics.median(costs)
    return out


def run(variant: str, logins: int) -> dict[str, float]:
    """Start uvicorn for ``variant``, run the load process once, stop uvicorn (by its pid)."""
    port = free_port()
    env = {**os.environ, **VARIANTS[variant], "PYTHONPATH": str(ROOT)}
    env.pop("LOOPSAFE_PROFILE", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_ready(port, server)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                LOAD,
                f"http://127.0.0.1:{port}",
                str(logins),
                str(PROBE_EVERY),
                str(MAX_PROBES),
                str(BURST_LIMIT),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=BURST_LIMIT + 30,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    data = json.loads(out.stdout)
    lat = [x * 1000 for x in data["lat"]]
    return {
        "probes": len(lat),
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "ok": data["statuses"].count(200),
        "refused_503": data["statuses"].count(503),
        "burst_s": data["burst"],
    }


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"# {dt.datetime.now(tz=dt.timezone.utc):%Y-%m-%d}, {cores} cores, "
        f"Python {sys.version.split()[0]}; {args.logins}-login burst, {args.rounds} rounds"
    )
    for name, cpu in cpu_per_verify().items():
        print(f"# CPU per verification, {name} recommended(): {cpu * 1000:.0f} ms")
    names = list(VARIANTS)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for variant in order:
            figures = run(variant, args.logins)
            results[variant].append(figures)
            print(
                f"round {round_no + 1} {variant:>12}: /health p50 {figures['p50_ms']:7.1f} ms "
                f"p99 {figures['p99_ms']:7.1f} ms max {figures['max_ms']:7.1f} ms "
                f"({figures['probes']:.0f} probes); logins 200={figures['ok']:.0f} "
                f"503={figures['refused_503']:.0f}; burst {figures['burst_s']:.2f} s",
                flush=True,
            )
    print("\nmedian over rounds:")
    print("| variant | /health p50 | /health p99 | /health max | logins 200 / 503 | burst |")
    print("|---|---|---|---|---|---|")
    for variant in names:
        runs = results[variant]

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"| {variant} | {med('p50_ms'):.1f} ms | {med('p99_ms'):.1f} ms | "
            f"{med('max_ms'):.1f} ms | {med('ok'):.0f} / {med('refused_503'):.0f} | "
            f"{med('burst_s'):.2f} s |"
        )
    base = statistics.median(r["p99_ms"] for r in results["loopsafe"])
    worst = statistics.median(r["p99_ms"] for r in results["pwdlib"])
    print(f"\n/health p99, pwdlib on the loop / loopsafe: {worst / base:.0f}x")


if __name__ == "__main__":
    main()
