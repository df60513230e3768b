"""Host budget figures: real multi-worker servers with and without LOOPSAFE_HOST_LIMIT.

Run it under the machine's benchmark lock::

    python benchmarks/host_budget.py servers
    python benchmarks/host_budget.py cold

``servers`` starts ``gunicorn -w 4 -k uvicorn_worker.UvicornWorker`` and
``uvicorn --workers 4`` serving ``examples/fastapi_app.py`` (through
``benchmarks/host_budget_app.py``, which adds a per-worker probe) on 127.0.0.1,
Argon2 at Django 6.1's defaults, each once with ``LOOPSAFE_HOST_LIMIT=auto``
and once without, alternating. From this process (not the server's) it signs
up 4 users, then:

1. a 40-login burst, while ``/bench/health`` is probed every 20 ms per prober;
2. a 10 s open-loop storm (Poisson arrivals) at 3x host capacity, clients
   giving up after 2 s (the server is told 1.9 s: ``LOOPSAFE_REQUEST_TIMEOUT``);
3. gunicorn only: SIGKILL a worker in the middle of hashing, twice, then the
   40-login burst again.

Figures: hashes running at once on the host (the most ever, from each worker's
pool sampled every 5 ms), RSS growth (the sum over workers of each one's peak,
and the peak of the workers' summed RSS), login p50/p99, goodput / capacity
(capacity = usable cores / CPU seconds of one hash, measured here first),
``/bench/health`` p99 per worker, and wasted hashes (the pools' ``abandoned``).

``cold`` runs 60 simultaneous PBKDF2 verifications (Django 6.1: 1,500,000
iterations) with 2 s client timeouts on a fresh default pool: without any
start-up call, after `PasswordHash.estimate_cost` (called on the loop, as the
Starlette lifespan does), and warmed by one hash; then 60 raw ``HashPool.run``
calls of a 50 ms callable the pool knows nothing about, on one worker with
``max_queue_wait=0.2``; then 60 of Django's own PBKDF2 checks (its installed
version's default iterations) through ``loopsafe.django.acheck_password``,
which declares no cost, on a fresh default pool. Each line: answered, refused
at once (`Overloaded`), clients timed out, and the process's CPU share of the
usable cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

from loopsafe import Argon2Hasher, HashPool, Overloaded, PasswordHash, PBKDF2Hasher, usable_cpus
from loopsafe._host import HostSlots, default_host_key
from loopsafe.cli import _harness as harness
from loopsafe.cli._harness import percentile
from loopsafe.cli._storm import poisson_arrivals
from loopsafe.hashers import _base

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CLIENT_TIMEOUT = 2.0
CPU_PER_HASH = [0.0]  # measured in main()


def cpu_seconds_per_hash() -> float:
    """CPU seconds of one Argon2 hash at Django 6.1's defaults (median of 3, after a warm-up)."""
    return harness.cpu_per_call(Argon2Hasher().hash, "measure")


class Server:
    """One multi-worker server and the files its workers write."""

    def __init__(self, kind: str, *, host_limit: bool) -> None:
        """Start ``kind`` (gunicorn or uvicorn) with 4 workers on a free port."""
        self.kind = kind
        self.host_limit = host_limit
        self.port = harness.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="loopsafe-bench-"))
        env = dict(os.environ, APP_DB=str(self.dir / "users.db"), BENCH_DIR=str(self.dir))
        env["PYTHONPATH"] = str(REPO / "src")
        env["LOOPSAFE_REQUEST_TIMEOUT"] = str(CLIENT_TIMEOUT - 0.1)
        env.pop("LOOPSAFE_HOST_LIMIT", None)
        if host_limit:
            env["LOOPSAFE_HOST_LIMIT"] = "auto"
        app = "benchmarks.host_budget_app:app"
        if kind == "gunicorn":
            cmd = [str(BIN / "gunicorn"), "-w", "4", "-k", "uvicorn_worker.UvicornWorker"]
            cmd += ["--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", app]
        else:
            cmd = [str(BIN / "uvicorn"), app, "--workers", "4", "--host", "127.0.0.1"]
            cmd += ["--port", str(self.port), "--log-level", "warning"]
        self.command = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env)
        self.key = f"{os.getuid()}-{kind}"

    def reports(self) -> dict[int, dict[str, object]]:
        """Each live worker's latest report, by pid."""
        out = {}
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text())
                if psutil.pid_exists(data["pid"]):
                    out[data["pid"]] = data
        return out

    def all_reports(self) -> dict[int, dict[str, object]]:
        """Every worker's latest report, dead ones included."""
        out = {}
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(ValueError, OSError):
                data = json.loads(path.read_text())
                out[data["pid"]] = data
        return out

    def stop(self) -> None:
        """SIGTERM the server (by its pid) and wait."""
        harness.stop(self.proc)


async def _ready(client: httpx.AsyncClient, server: Server) -> None:
    for _ in range(600):
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/health")).status_code == 200 and len(server.reports()) >= 4:  # noqa: PLR2004
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{server.command} did not start")


def _peak_at_once(
    reports: dict[int, dict[str, object]], since: float, until: float
) -> tuple[int, int]:
    """(most calls running at once summed over workers, most host slots held) in [since, until]."""
    events = []
    held = 0
    for data in reports.values():
        for t, running, host_held in data["timeline"]:  # type: ignore[attr-defined]
            events.append((t, data["pid"], running))
            if since <= t <= until:
                held = max(held, host_held)
    events.sort()
    current: dict[int, int] = {}
    peak = 0
    for t, pid, running in events:
        current[pid] = running
        if since <= t <= until:
            peak = max(peak, sum(current.values()))
    return peak, held


def _abandoned(reports: dict[int, dict[str, object]]) -> int:
    return sum(int(d["stats"]["abandoned"]) for d in reports.values())  # type: ignore[index]


class Phase:
    """Samples RSS and probes /bench/health while a load runs."""

    def __init__(self, client: httpx.AsyncClient, server: Server) -> None:
        """Note each worker's RSS now."""
        self.client = client
        self.server = server
        self.done = asyncio.Event()
        self.health: dict[int, list[float]] = {}
        self.procs = {pid: psutil.Process(pid) for pid in server.reports()}
        self.base = {pid: p.memory_info().rss for pid, p in self.procs.items()}
        self.peak = dict(self.base)
        self.peak_sum = 0
        self.cpu_base = {pid: sum(p.cpu_times()[:2]) for pid, p in self.procs.items()}

    async def _rss(self) -> None:
        while not self.done.is_set():
            growth = 0
            for pid, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss
                    self.peak[pid] = max(self.peak[pid], rss)
                    growth += rss - self.base[pid]
            self.peak_sum = max(self.peak_sum, growth)
            await asyncio.sleep(0.01)

    async def _probe(self) -> None:
        while not self.done.is_set():
            start = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                pid = (await self.client.get("/bench/health")).json()["pid"]
                self.health.setdefault(pid, []).append(time.perf_counter() - start)
            await asyncio.sleep(0.02)

    async def run(self, load: object) -> dict[str, object]:
        """Await ``load`` while sampling; return its result with the phase's figures."""
        start_wall = time.time()
        start = time.perf_counter()
        wasted_before = _abandoned(self.server.all_reports())
        tasks = [asyncio.create_task(self._rss())]
        tasks += [asyncio.create_task(self._probe()) for _ in range(4)]
        result = await load  # type: ignore[misc]
        elapsed = time.perf_counter() - start
        cpu = 0.0
        for pid, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                cpu += sum(proc.cpu_times()[:2]) - self.cpu_base[pid]
        self.done.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.3)  # the workers' next reports
        reports = self.server.all_reports()
        at_once, held = _peak_at_once(reports, start_wall, time.time())
        return {
            **result,
            "hashes_at_once": held if self.server.host_limit else at_once,
            "rss_sum_of_peaks_mib": sum(self.peak[p] - self.base[p] for p in self.base) / 2**20,
            "rss_peak_of_sum_mib": self.peak_sum / 2**20,
            "health_p99_ms_per_worker": sorted(
                round(1000 * percentile(v, 99), 1) for v in self.health.values()
            ),
            "wasted": _abandoned(reports) - wasted_before,
            # The workers' CPU seconds over (elapsed x usable cores): the share of
            # the machine the server got (others share these 2 cores).
            "server_cpu_share": round(cpu / (elapsed * usable_cpus()), 2),
            # Answered logins x CPU-s per hash / CPU the workers used: how much of
            # the CPU the server got went into hashes someone received.
            "useful_cpu_fraction": round(result["ok"] * CPU_PER_HASH[0] / cpu, 2) if cpu else None,  # type: ignore[index]
        }


async def _login(client: httpx.AsyncClient, i: int) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        response = await client.post(
            "/login",
            json={"username": f"user{i % 4}", "password": f"password-{i % 4}"},
            timeout=CLIENT_TIMEOUT,
        )
    except httpx.TimeoutException:
        return "timeout", time.perf_counter() - start
    except httpx.HTTPError:  # the worker was killed under this request
        return "error", time.perf_counter() - start
    if response.status_code == 503:  # noqa: PLR2004
        # Overloaded (refused at once) or the request's deadline (expired in the queue).
        status = "refused" if "retry_after" in response.json() else "expired"
    else:
        status = "ok" if response.status_code == 200 else "error"  # noqa: PLR2004
    return status, time.perf_counter() - start


def _answers(results: list[tuple[str, float]], ok: list[float]) -> dict[str, object]:
    """Count the logins by outcome; p50 and p99 of the answered ones' times (``ok``)."""
    return {
        "ok": len(ok),
        "refused": sum(s == "refused" for s, _ in results),
        "expired": sum(s == "expired" for s, _ in results),
        "timeout": sum(s == "timeout" for s, _ in results),
        "p50_s": round(percentile(ok, 50), 2),
        "p99_s": round(percentile(ok, 99), 2),
    }


async def _burst(client: httpx.AsyncClient, logins: int) -> dict[str, object]:
    start = time.perf_counter()
    results = await asyncio.gather(*(_login(client, i) for i in range(logins)))
    elapsed = time.perf_counter() - start
    ok = [t for status, t in results if status == "ok"]
    return {**_answers(results, ok), "logins_per_s": round(len(ok) / elapsed, 2)}


async def _storm(
    client: httpx.AsyncClient, rate: float, duration: float, capacity: float
) -> dict[str, object]:
    rng = random.Random(7)
    arrivals = poisson_arrivals(rate, duration, rng)
    results = await harness.open_loop(arrivals, lambda i: _login(client, i))
    ok = [t for status, t in results if status == "ok" and t <= CLIENT_TIMEOUT]
    return {
        "offered": len(arrivals),
        **_answers(results, ok),
        "goodput_ratio": round(len(ok) / duration / capacity, 2),
    }


async def _kill_twice(client: httpx.AsyncClient, server: Server) -> list[int]:
    killed = []
    for _ in range(2):
        logins = asyncio.gather(*(_login(client, i) for i in range(8)))
        await asyncio.sleep(0.5)  # hashes are running now
        busy = [
            p for p, d in server.reports().items() if d["timeline"] and d["timeline"][-1][1] > 0
        ]  # type: ignore[index]
        victim = (busy or list(server.reports()))[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        await logins
        for _ in range(300):  # gunicorn starts a replacement
            await asyncio.sleep(0.1)
            if len(server.reports()) >= 4 and victim not in server.reports():  # noqa: PLR2004
                break
    return killed


async def _one_server(kind: str, *, host_limit: bool, capacity: float) -> dict[str, object]:
    server = Server(kind, host_limit=host_limit)
    out: dict[str, object] = {"command": server.command, "host_limit": host_limit}
    try:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}", timeout=60, limits=limits
        ) as client:
            await _ready(client, server)
            for i in range(4):
                r = await client.post(
                    "/signup", json={"username": f"user{i}", "password": f"password-{i}"}
                )
                r.raise_for_status()
            await asyncio.sleep(0.5)
            out["burst"] = await Phase(client, server).run(_burst(client, 40))
            await asyncio.sleep(1)
            out["storm_3x"] = await Phase(client, server).run(
                _storm(client, 3 * capacity, 10.0, capacity)
            )
            if kind == "gunicorn":
                await asyncio.sleep(1)
                out["killed"] = await _kill_twice(client, server)
                if host_limit:
                    slots = HostSlots(usable_cpus(), server.key)
                    await asyncio.sleep(0.2)
                    out["host_slots_held_after_kills_idle"] = slots.usage().held
                await asyncio.sleep(1)
                out["burst_after_kills"] = await Phase(client, server).run(_burst(client, 40))
    finally:
        server.stop()
    return out


def _spin_50ms() -> None:
    """The raw variant's callable: 50 ms of sleep the pool knows nothing about."""
    time.sleep(0.05)


async def _cold_burst(call: Callable[[], Awaitable[object]]) -> tuple[int, int, int, float]:
    """60 calls at once, each given up after 2 s: (answered, refused, timed out, CPU share)."""
    outcomes = {"ok": 0, "refused": 0, "timeout": 0}
    retry_after: list[float] = []

    async def one() -> None:
        try:
            await asyncio.wait_for(call(), CLIENT_TIMEOUT)
            outcomes["ok"] += 1
        except Overloaded as refused:
            outcomes["refused"] += 1
            retry_after.append(refused.retry_after)
        except TimeoutError:
            outcomes["timeout"] += 1

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(60)))
    share = (time.process_time() - cpu) / ((time.perf_counter() - wall) * usable_cpus())
    if retry_after and min(retry_after) <= 0:
        print("  a refusal carried no retry_after")
    return outcomes["ok"], outcomes["refused"], outcomes["timeout"], share


async def _cold_django(label: str) -> None:
    """60 of Django's own PBKDF2 checks at once through ``loopsafe.django`` on a fresh default pool.

    Django's path declares no cost: only the engine can make a fresh pool refuse.
    """
    # Imported here: only this study configures Django, and only when it runs.
    import django  # noqa: PLC0415
    from django.conf import settings  # noqa: PLC0415

    if not settings.configured:
        settings.configure(
            PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"],
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        )
        django.setup()
    from django.contrib.auth.hashers import make_password  # noqa: PLC0415

    from loopsafe import default_pool  # noqa: PLC0415
    from loopsafe.django import acheck_password  # noqa: PLC0415

    stored = make_password("pw")
    default_pool().close()  # the next call makes a fresh one, with default settings
    ok, refused, timeout, share = await _cold_burst(lambda: acheck_password("pw", stored))
    await default_pool().aclose()
    iterations = stored.split("$")[1]
    print(
        f"{label + f' ({iterations} it.)':<30} ok={ok} refused_at_once={refused} "
        f"timed_out={timeout} cpu_share={share:.2f} load={os.getloadavg()[0]:.2f}",
        flush=True,
    )


async def _cold() -> None:
    """Each variant on a fresh pool: 60 calls at once, 2 s client timeouts."""
    stored = PBKDF2Hasher().hash("pw")
    variants = [
        "PasswordHash, cold",
        "PasswordHash, estimate_cost()",
        "PasswordHash, warm",
        "HashPool.run 50 ms, cold",
    ]
    for label in [*variants, "Django acheck_password, cold"]:
        _base._ESTIMATES.clear()  # noqa: SLF001 - each variant starts unmeasured
        if label.startswith("Django"):
            await _cold_django(label)
            continue
        if label.startswith("HashPool.run"):
            # The raw case: one worker, max_queue_wait=0.2, an unknown callable.
            pool = HashPool(1, max_queue_wait=0.2, name=label)
            ok, refused, timeout, share = await _cold_burst(lambda p=pool: p.run(_spin_50ms))
        else:
            pool = HashPool(name=label)
            ph = PasswordHash([PBKDF2Hasher()], pool=pool)
            if label.endswith("estimate_cost()"):
                ph.estimate_cost()
            if label.endswith("warm"):
                await ph.averify("pw", stored)
            ok, refused, timeout, share = await _cold_burst(lambda ph=ph: ph.averify("pw", stored))
        await pool.aclose()
        print(
            f"{label:<30} ok={ok} refused_at_once={refused} timed_out={timeout} "
            f"cpu_share={share:.2f} load={os.getloadavg()[0]:.2f}",
            flush=True,
        )


def main() -> None:
    """Parse the arguments and run one study."""
    parser = argparse.ArgumentParser()
    parser.add_argument("study", choices=["servers", "cold"])
    parser.add_argument("--servers", nargs="+", default=["gunicorn", "uvicorn"])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    date = time.strftime("%F")
    print(f"cores={os.cpu_count()} usable={usable_cpus()} date={date} key={default_host_key()}")
    if args.study == "cold":
        asyncio.run(_cold())
        return
    cpu = cpu_seconds_per_hash()
    CPU_PER_HASH[0] = cpu
    capacity = usable_cpus() / cpu
    print(f"Argon2 (Django 6.1 defaults): {cpu:.3f} CPU-s per hash, host capacity {capacity:.2f}/s")
    results = []
    for kind in args.servers:
        for host_limit in (True, False):
            row = asyncio.run(_one_server(kind, host_limit=host_limit, capacity=capacity))
            print(json.dumps(row), flush=True)
            results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"capacity": capacity, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
