"""A credential-stuffing flood against a real server: uvicorn + the FastAPI example, FIFO vs keyed.

Each variant is a fresh uvicorn process on 127.0.0.1 serving
``examples/fastapi_app.py`` at its real defaults (loopsafe's
``PasswordHash.recommended()``: Argon2id at Django's parameters, the pool's
default 1 s admission budget):

- ``fifo``: ``LOOPSAFE_CLIENT_KEYS=0``, every request shares one key;
- ``keyed``: the default, each request's key is ``request.client.host``.

A separate load process (httpx, open loop, Poisson arrivals) sends, for
``--duration`` seconds, logins with wrong passwords from one address
(127.0.0.2, the flood, ``--flood-load`` x capacity) and logins with the right
password from ``--legit-keys`` other addresses (127.0.0.10...,
``--legit-load`` x capacity together), each bound to its source address with
httpx's ``local_address``; every request gives up after ``--timeout``
seconds. A prober on 127.0.0.3 gets /health every 50 ms. Capacity is measured
first in this process: Argon2 verifications per second of wall time with
one per core running at once (the machine is shared, so this is the
effective capacity, printed next to cores / CPU seconds per hash).

With ``--app django`` the server is instead ``benchmarks/e2e``'s Django
project (``aauthenticate`` with loopsafe's backend and middleware, PBKDF2 at
the installed Django's defaults, a freshly seeded SQLite database per
variant): FIFO is ``LOOPSAFE["CLIENT_KEY"] = None``, keyed the default
(``REMOTE_ADDR``).

    python benchmarks/flood_server.py [--duration 20] [--rounds 1] [--app django]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from loopsafe import HashPool, PasswordHash
from loopsafe.cli._harness import cores_line, free_port, percentile, stop, wait_ready
from loopsafe.cli._json import reproducing_command

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "benchmarks" / "e2e"
PASSWORD = "correct horse battery staple"
HTTP_OK = 200
VARIANTS = {"fifo": {"LOOPSAFE_CLIENT_KEYS": "0"}, "keyed": {"LOOPSAFE_CLIENT_KEYS": "1"}}

LOAD = r"""
import asyncio, json, random, sys, time
import httpx

base, duration, timeout, flood_rate, legit_rate, legit_keys, seed, app = sys.argv[1:9]
duration, timeout = float(duration), float(timeout)
flood_rate, legit_rate, legit_keys = float(flood_rate), float(legit_rate), int(legit_keys)
rng = random.Random(int(seed))
PASSWORD = "correct horse battery staple"
if app == "django":  # e2eproject: seeded users user0..., a posted form
    RIGHT = {"data": {"username": "user1", "password": PASSWORD}}
    WRONG = {"data": {"username": "user0", "password": "guess"}}
else:  # the FastAPI example: signs up its user, JSON
    RIGHT = {"json": {"username": "ada", "password": PASSWORD}}
    WRONG = {"json": {"username": "ada", "password": "guess"}}

def client(address):
    transport = httpx.AsyncHTTPTransport(local_address=address, retries=0,
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200))
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=timeout)

def arrivals(rate):
    out, at = [], rng.expovariate(rate)
    while at < duration:
        out.append(at)
        at += rng.expovariate(rate)
    return out

async def main():
    seen = {"legit": [], "flood": []}
    health = []
    if app != "django":
        async with client("127.0.0.1") as admin:
            r = await admin.post("/signup", **RIGHT)
            assert r.status_code == 201, r.status_code
    flood = client("127.0.0.2")
    legit = [client(f"127.0.0.{10 + i}") for i in range(legit_keys)]
    prober = client("127.0.0.3")
    plan = [(at, "flood", flood) for at in arrivals(flood_rate)]
    plan += [(at, "legit", rng.choice(legit)) for at in arrivals(legit_rate)]
    plan.sort(key=lambda item: item[0])
    start = time.perf_counter()

    async def login(kind, http):
        t = time.perf_counter()
        try:
            r = await http.post("/login", **(RIGHT if kind == "legit" else WRONG))
            seen[kind].append((r.status_code, time.perf_counter() - t))
        except httpx.TimeoutException:
            seen[kind].append(("timeout", time.perf_counter() - t))
        except httpx.HTTPError as exc:
            seen[kind].append((type(exc).__name__, time.perf_counter() - t))

    async def probe():
        while time.perf_counter() - start < duration + timeout:
            t = time.perf_counter()
            try:
                await prober.get("/health")
                health.append(time.perf_counter() - t)
            except httpx.HTTPError:
                health.append(timeout)
            await asyncio.sleep(0.05)

    tasks = [asyncio.ensure_future(probe())]
    for at, kind, http in plan:
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(login(kind, http)))
    await asyncio.gather(*tasks)
    for http in (flood, prober, *legit):
        await http.aclose()
    print(json.dumps({"seen": seen, "health": health}))

asyncio.run(main())
"""


DJANGO_BUSY = r"""
import asyncio, sys, time
import django
django.setup()
from django.contrib.auth.hashers import make_password
from loopsafe import HashPool

async def main(cores):
    encoded = make_password("correct horse battery staple")
    calls = 4 * cores
    async with HashPool(cores, max_queue_wait=None) as pool:
        start = time.perf_counter()
        await asyncio.gather(*(pool.run(check, encoded) for _ in range(calls)))
        print(calls / (time.perf_counter() - start))

def check(encoded):
    from django.contrib.auth.hashers import check_password
    return check_password("correct horse battery staple", encoded)

asyncio.run(main(int(sys.argv[1])))
"""


def capacity() -> tuple[float, float]:
    """Return (cores / CPU s per verify, verifies per wall second with every core busy)."""
    ph = PasswordHash.recommended()
    encoded = ph.hash(PASSWORD)
    ph.verify(PASSWORD, encoded)
    costs = []
    for _ in range(3):
        start = time.process_time()
        ph.verify(PASSWORD, encoded)
        costs.append(time.process_time() - start)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1

    async def busy() -> float:
        async with HashPool(cores, max_queue_wait=None) as pool:
            calls = 4 * cores
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    pool.run(ph.verify, "correct horse battery staple", encoded)
                    for _ in range(calls)
                )
            )
            return calls / (time.perf_counter() - start)

    return cores / statistics.median(costs), asyncio.run(busy())


def django_env(database: Path, variant: str) -> dict[str, str]:
    """The e2e project's environment: loopsafe mode, keys on or off, a seeded database."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "e2eproject.settings",
            "LOOPSAFE_E2E_DB": str(database),
            "LOOPSAFE_E2E_MODE": "loopsafe",
            "LOOPSAFE_E2E_PASSWORD": PASSWORD,
            "LOOPSAFE_E2E_CLIENT_KEYS": "0" if variant == "fifo" else "1",
            "PYTHONPATH": str(E2E),
        }
    )
    for name in ("LOOPSAFE_E2E_ITERATIONS", "LOOPSAFE_E2E_MAX_QUEUE_WAIT"):
        env.pop(name, None)
    return env


def seed_django(database: Path) -> float:
    """Seed the e2e project's users; return its CPU seconds per login (Django's own hasher)."""
    done = subprocess.run(
        [sys.executable, "-m", "e2eproject.seed", "--users", "50"],
        cwd=E2E,
        env=django_env(database, "keyed"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_s_per_login"])


def django_capacity(database: Path) -> tuple[float, float]:
    """Return (cores / CPU s per login, logins per wall second with every core busy)."""
    cpu = seed_django(database)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    probe = subprocess.run(
        [sys.executable, "-c", DJANGO_BUSY, str(cores)],
        cwd=E2E,
        env=django_env(database, "keyed"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return cores / cpu, float(probe.stdout.strip().splitlines()[-1])


def run(variant: str, args: argparse.Namespace, rate: float, seed: int) -> dict[str, Any]:
    """Start uvicorn for ``variant``, run the load process once, stop uvicorn (by its pid)."""
    port = free_port()
    if args.app == "django":
        database = Path(args.workdir) / f"flood-{variant}-{seed}.sqlite3"
        seed_django(database)
        env = django_env(database, variant)
        target, cwd = "e2eproject.asgi:application", E2E
    else:
        env = {
            **os.environ,
            "USE_LOOPSAFE": "1",
            **VARIANTS[variant],
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("LOOPSAFE_PROFILE", None)
        env.pop("LOOPSAFE_MAX_QUEUE_WAIT", None)
        target, cwd = "examples.fastapi_app:app", ROOT
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--no-access-log",
        ],
        cwd=cwd,
        env=env,
        stderr=subprocess.DEVNULL,  # one warning per refused login: the counts are in the load
    )
    try:
        wait_ready(port, server)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                LOAD,
                f"http://127.0.0.1:{port}",
                str(args.duration),
                str(args.timeout),
                str(args.flood_load * rate),
                str(args.legit_load * rate),
                str(args.legit_keys),
                str(seed),
                args.app,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=args.duration + 4 * args.timeout + 60,
        )
    finally:
        stop(server)
    data = json.loads(out.stdout)
    figures: dict[str, Any] = {"variant": variant}
    for kind, answers in data["seen"].items():
        ok = [seconds for status, seconds in answers if status == HTTP_OK]
        statuses: dict[str, int] = {}
        for status, _ in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        figures[kind] = {
            "offered": len(answers),
            "ok_in_time": len(ok),
            "success": round(len(ok) / len(answers), 4) if answers else None,
            "p50_ms": round(percentile(ok, 50) * 1000, 1),
            "p99_ms": round(percentile(ok, 99) * 1000, 1),
            "statuses": statuses,
        }
    health = [x * 1000 for x in data["health"]]
    figures["health"] = {
        "probes": len(health),
        "p50_ms": round(statistics.median(health), 1),
        "p99_ms": round(percentile(health, 99), 1),
        "max_ms": round(max(health), 1),
    }
    return figures


def main() -> None:
    """Measure capacity, then each variant (order alternating per round); print and dump JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--flood-load", type=float, default=10.0)
    parser.add_argument("--legit-load", type=float, default=0.5)
    parser.add_argument("--legit-keys", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--app",
        choices=("fastapi", "django"),
        default="fastapi",
        help="examples/fastapi_app.py (Argon2id) or benchmarks/e2e's Django project (PBKDF2)",
    )
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    workdir = tempfile.TemporaryDirectory(prefix="loopsafe-flood-")
    args.workdir = workdir.name
    if args.app == "django":
        cpu_capacity, effective = django_capacity(Path(args.workdir) / "probe.sqlite3")
    else:
        cpu_capacity, effective = capacity()
    print(
        cores_line(f"{args.app}, ")
        + f"{'PBKDF2 (Django defaults)' if args.app == 'django' else 'Argon2id (Django defaults)'} "
        f"capacity {cpu_capacity:.2f}/s by CPU, {effective:.2f}/s effective; "
        f"loads x effective: flood {args.flood_load:g}x from 127.0.0.2, {args.legit_keys} "
        f"legitimate addresses {args.legit_load:g}x; client timeout {args.timeout:g} s; "
        f"{args.duration:g} s per variant",
        flush=True,
    )
    results = []
    for number in range(args.rounds):
        order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
        for variant in order:
            figures = run(variant, args, effective, 1212 + number)
            results.append(figures)
            legit, flood, health = figures["legit"], figures["flood"], figures["health"]
            print(
                f"{variant:6} legit ok {legit['ok_in_time']}/{legit['offered']} "
                f"p50 {legit['p50_ms']} ms p99 {legit['p99_ms']} ms {legit['statuses']}; "
                f"flood {flood['statuses']}; /health p50 {health['p50_ms']} ms "
                f"p99 {health['p99_ms']} ms max {health['max_ms']} ms",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "command": reproducing_command(
                        "python benchmarks/flood_server.py", sys.argv[1:]
                    ),
                    "cpu_capacity_per_s": cpu_capacity,
                    "effective_capacity_per_s": effective,
                    "results": results,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
