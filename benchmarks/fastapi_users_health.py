"""/health latency of a fastapi-users app during a 20-login Argon2 burst: stock vs loopsafe.

Variants (each a fresh uvicorn process on 127.0.0.1, on a free port, serving
``examples/fastapi_users_app.py``: fastapi-users 15, SQLAlchemy + aiosqlite, JWT
login at ``/auth/jwt/login``), all at the same Argon2id costs, Django 6.1's
defaults (t=2, m=100 MiB, p=8), which loopsafe's ``PasswordHash.recommended()``
uses:

- ``stock``: ``USE_LOOPSAFE=0``, fastapi-users' ``BaseUserManager`` and its
  pwdlib ``PasswordHelper`` (given those costs): every hash on the event loop;
- ``loopsafe``: the manager on ``PoolPasswordManagerMixin`` with loopsafe's
  ``PasswordHelper``, every call admitted (``LOOPSAFE_MAX_QUEUE_WAIT=none``),
  so it does all 20 hashes like stock;
- ``loopsafe-1s``: the same with the default 1 s admission budget: what does
  not fit is refused at once with 503 + Retry-After;
- ``floor``: ``loopsafe`` with near-free hashes (``LOOPSAFE_PROFILE=cheap``):
  what 20 logins cost the loop in fastapi-users itself (form parsing, the
  SQLAlchemy/aiosqlite query, the JWT), which no hashing strategy removes.

A separate load process (httpx) registers one user, then sends 20 concurrent
logins while probing /health every 10 ms until the burst is answered (bounded
by count and time). Rounds rotate the variants' order; the summary gives the
median over rounds of each figure, and the CPU share of the server process
during the burst (docs/measuring.md). On a shared machine, hold its benchmark
lock (``flock LOCKFILE python ...``) so no other benchmark overlaps:

    python benchmarks/fastapi_users_health.py [--rounds 3]
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

import psutil

from loopsafe import PasswordHash

ROOT = Path(__file__).resolve().parent.parent
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
TARGET_P99_MS = 30.0
PROBE_EVERY = 0.01
MAX_PROBES = 3000
BURST_LIMIT = 120.0
VARIANTS = {
    "stock": {"USE_LOOPSAFE": "0"},
    "loopsafe": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"},
    "loopsafe-1s": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"},
    "floor": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none", "LOOPSAFE_PROFILE": "cheap"},
}

LOAD = r"""
import asyncio, json, sys, time
import httpx

async def main(base, logins, every, max_probes, limit):
    async with httpx.AsyncClient(base_url=base, timeout=limit) as client:
        email, password = "ada@example.org", "correct horse battery staple"
        r = await client.post("/auth/register", json={"email": email, "password": password})
        assert r.status_code == 201, r.status_code
        form = {"username": email, "password": password}
        lat, statuses, done = [], [], asyncio.Event()

        async def login():
            statuses.append((await client.post("/auth/jwt/login", data=form)).status_code)

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


def cpu_per_verify() -> float:
    """CPU seconds of one verification at Django 6.1's Argon2 costs (median of 3)."""
    hasher = PasswordHash.recommended()
    encoded = hasher.hash("correct horse battery staple")
    hasher.verify("correct horse battery staple", encoded)  # warm-up
    costs = []
    for _ in range(3):
        start = time.process_time()
        hasher.verify("correct horse battery staple", encoded)
        costs.append(time.process_time() - start)
    return statistics.median(costs)


def run(variant: str, logins: int) -> dict[str, float]:
    """Start uvicorn for ``variant``, run the load process once, stop uvicorn (by its pid)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LOOPSAFE_PROFILE", None)
    env.update(VARIANTS[variant])
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.fastapi_users_app:app",
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
        proc = psutil.Process(server.pid)
        cpu_before = sum(proc.cpu_times()[:2])
        wall_before = time.perf_counter()
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
        cpu_share = (sum(proc.cpu_times()[:2]) - cpu_before) / (
            (time.perf_counter() - wall_before) * CORES
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
        "cpu_share": cpu_share,
    }


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    cores = CORES
    print(
        f"# {dt.datetime.now(tz=dt.timezone.utc):%Y-%m-%d}, {cores} cores, "
        f"Python {sys.version.split()[0]}; {args.logins}-login burst, {args.rounds} rounds"
    )
    print(f"# CPU per verification, Argon2id t=2 m=100 MiB p=8: {cpu_per_verify() * 1000:.0f} ms")
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
                f"503={figures['refused_503']:.0f}; burst {figures['burst_s']:.2f} s; "
                f"server CPU share {figures['cpu_share']:.2f}",
                flush=True,
            )
    print("\nmedian over rounds:")
    print(
        "| variant | /health p50 | /health p99 | /health max | logins 200 / 503 | burst "
        "| server CPU share |"
    )
    print("|---|---|---|---|---|---|---|")
    for variant in names:
        runs = results[variant]

        def med(key: str, runs: list[dict[str, float]] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"| {variant} | {med('p50_ms'):.1f} ms | {med('p99_ms'):.1f} ms | "
            f"{med('max_ms'):.1f} ms | {med('ok'):.0f} / {med('refused_503'):.0f} | "
            f"{med('burst_s'):.2f} s | {med('cpu_share'):.2f} |"
        )
    base = statistics.median(r["p99_ms"] for r in results["loopsafe"])
    worst = statistics.median(r["p99_ms"] for r in results["stock"])
    print(f"\n/health p99, stock fastapi-users / loopsafe: {worst / base:.0f}x")
    verdict = "met" if base <= TARGET_P99_MS else "NOT met"
    print(f"target /health p99 <= {TARGET_P99_MS:.0f} ms with loopsafe: {verdict} ({base:.1f} ms)")


if __name__ == "__main__":
    main()
