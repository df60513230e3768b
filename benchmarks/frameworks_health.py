"""/health latency of the Litestar and aiohttp examples during a login burst: loopsafe or not.

Each variant is a fresh server process on 127.0.0.1 (a free port) serving one
of the examples with Argon2id at Django 6.1's defaults (t=2, 100 MiB, p=8) in
every variant, so each does the same work per login:

- ``litestar-executor``: ``examples/litestar_app.py`` under uvicorn with
  ``USE_LOOPSAFE=0``: advanced-alchemy's ``Argon2Hasher`` column, login
  verified through ``run_in_executor(None, ...)`` (litestar-fullstack's way:
  the shared default executor, no bound, no shedding);
- ``aiohttp-pwdlib``: ``examples/aiohttp_app.py`` on aiohttp's own runner with
  ``USE_LOOPSAFE=0``: pwdlib's Argon2 verify inside ``async def`` (the
  aiohttp-security ``db_auth`` example's way, with passlib there);
- ``<framework>-loopsafe``: the same example with loopsafe, every call admitted
  (``LOOPSAFE_MAX_QUEUE_WAIT=none``), so it does all 20 hashes like the others;
- ``<framework>-loopsafe-1s``: the default 1 s admission budget: what does not
  fit is refused at once with 503 + Retry-After.

A separate load process (httpx) registers one user, then sends 20 concurrent
logins while probing /health every 10 ms until the burst is answered (bounded
by count and time). Rounds rotate the variants' order; the summary gives the
median over rounds of each figure. "server CPU" is the server process's CPU
seconds during the burst over (burst seconds x cores): its share of the machine.

    flock <lock file> python benchmarks/frameworks_health.py [--rounds 3]
        [--logins 20] [--framework litestar|aiohttp|all]
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
PROBE_EVERY = 0.01
MAX_PROBES = 3000
BURST_LIMIT = 120.0
UVICORN = ["-m", "uvicorn", "examples.litestar_app:app", "--host", "127.0.0.1"]
UVICORN += ["--log-level", "warning", "--port"]
AIOHTTP = ["examples/aiohttp_app.py", "--port"]
ALL_IN = {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"}
ONE_SECOND = {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"}
VARIANTS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "litestar-executor": ("litestar", UVICORN, {"USE_LOOPSAFE": "0"}),
    "litestar-loopsafe": ("litestar", UVICORN, ALL_IN),
    "litestar-loopsafe-1s": ("litestar", UVICORN, ONE_SECOND),
    "aiohttp-pwdlib": ("aiohttp", AIOHTTP, {"USE_LOOPSAFE": "0"}),
    "aiohttp-loopsafe": ("aiohttp", AIOHTTP, ALL_IN),
    "aiohttp-loopsafe-1s": ("aiohttp", AIOHTTP, ONE_SECOND),
}

LOAD = r"""
import asyncio, json, sys, time
import httpx

async def main(base, logins, every, max_probes, limit):
    async with httpx.AsyncClient(base_url=base, timeout=limit) as client:
        form = {"username": "ada", "password": "correct horse battery staple"}
        r = await client.post("/register", json=form)
        assert r.status_code == 201, r.status_code
        print("registered", flush=True)
        sys.stdin.readline()  # the parent reads the server's CPU time, then says go
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
            raise RuntimeError("the server exited at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def cpu_per_verify() -> float:
    """CPU seconds of one Argon2 verification at Django 6.1's defaults (median of 3)."""
    hasher = PasswordHash.recommended()
    encoded = hasher.hash("correct horse battery staple")
    hasher.verify("correct horse battery staple", encoded)  # warm-up
    costs = []
    for _ in range(3):
        start = time.process_time()
        hasher.verify("correct horse battery staple", encoded)
        costs.append(time.process_time() - start)
    return statistics.median(costs)


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


def run(variant: str, logins: int, cores: int) -> dict[str, float]:
    """Start the server for ``variant``, run the load process once, stop it (by its pid)."""
    _, argv, variant_env = VARIANTS[variant]
    port = free_port()
    env = {**os.environ, **variant_env, "PYTHONPATH": str(ROOT)}
    env.pop("LOOPSAFE_PROFILE", None)
    env.pop("APP_DB", None)
    server = subprocess.Popen([sys.executable, *argv, str(port)], cwd=ROOT, env=env)
    try:
        wait_ready(port, server)
        load = subprocess.Popen(
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
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert load.stdin is not None  # noqa: S101 - set by PIPE above
            assert load.stdout is not None  # noqa: S101
            if load.stdout.readline().strip() != "registered":
                raise RuntimeError("the load process failed to register")
            watched = psutil.Process(server.pid)
            cpu_before = cpu_seconds(watched)
            load.stdin.write("go\n")
            load.stdin.flush()
            line = load.stdout.readline()
            cpu_used = cpu_seconds(watched) - cpu_before
            load.wait(timeout=BURST_LIMIT + 30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    data = json.loads(line)
    lat = [x * 1000 for x in data["lat"]]
    return {
        "probes": len(lat),
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "ok": data["statuses"].count(200),
        "refused_503": data["statuses"].count(503),
        "burst_s": data["burst"],
        "cpu_share": cpu_used / (data["burst"] * cores),
    }


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--framework", choices=["litestar", "aiohttp", "all"], default="all")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    names = [n for n, (fw, _, _) in VARIANTS.items() if args.framework in {"all", fw}]
    print(
        f"# {dt.datetime.now(tz=dt.timezone.utc):%Y-%m-%d}, {cores} cores, "
        f"Python {sys.version.split()[0]}; {args.logins}-login burst, {args.rounds} rounds; "
        f"Argon2id t=2 m=100 MiB p=8 everywhere"
    )
    print(f"# CPU per verification: {cpu_per_verify() * 1000:.0f} ms")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_no in range(args.rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for variant in order:
            figures = run(variant, args.logins, cores)
            results[variant].append(figures)
            print(
                f"round {round_no + 1} {variant:>20}: /health p50 {figures['p50_ms']:7.1f} ms "
                f"p99 {figures['p99_ms']:7.1f} ms max {figures['max_ms']:7.1f} ms "
                f"({figures['probes']:.0f} probes); logins 200={figures['ok']:.0f} "
                f"503={figures['refused_503']:.0f}; burst {figures['burst_s']:.2f} s; "
                f"server CPU {figures['cpu_share']:.0%}",
                flush=True,
            )
    print("\nmedian over rounds:")
    print(
        "| variant | /health p50 | /health p99 | /health max | logins 200 / 503 | burst |", end=""
    )
    print(" server CPU |")
    print("|---|---|---|---|---|---|---|")
    for variant in names:
        rows = results[variant]

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"| {variant} | {med('p50_ms'):.1f} ms | {med('p99_ms'):.1f} ms | "
            f"{med('max_ms'):.1f} ms | {med('ok'):.0f} / {med('refused_503'):.0f} | "
            f"{med('burst_s'):.2f} s | {med('cpu_share'):.0%} |"
        )
    for framework, baseline in (("litestar", "executor"), ("aiohttp", "pwdlib")):
        if f"{framework}-loopsafe" in results:
            ours = statistics.median(r["p99_ms"] for r in results[f"{framework}-loopsafe"])
            theirs = statistics.median(r["p99_ms"] for r in results[f"{framework}-{baseline}"])
            print(f"{framework}: /health p99, {baseline} / loopsafe: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
