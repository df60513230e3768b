"""The load process of the end-to-end benchmark: logins, with ``/health`` probed every 10 ms.

    python load.py --url http://127.0.0.1:PORT burst --logins 20
    python load.py --url http://127.0.0.1:PORT storm --rate 16.5 --duration 10 --timeout 2

It runs in its own process (``run.py`` starts it), so its event loop is not
the server's. ``/health`` probes go out on a fixed 10 ms schedule whether or
not earlier ones were answered (an open loop: a server that stalls for 3 s
shows 300 slow probes, not one), on their own connections. The figures count
the probes sent between the first login and the last answer.

``burst`` sends N logins at once (users ``user0`` ... ``userN-1``) and waits
for every answer. ``storm`` sends logins on a Poisson schedule (they never
wait for each other); a client gives up after ``--timeout`` seconds.
Answers: 200 is a login, 503 a refusal (loopsafe's admission control), 401
a wrong password (there should be none). The password comes from
``LOOPSAFE_E2E_PASSWORD``. Prints one JSON document. Every loop is bounded in
count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from loopsafe.cli import _harness as harness
from loopsafe.cli._harness import percentile

PROBE_INTERVAL = 0.01
PROBE_TIMEOUT = 60.0
#: Most probes one phase may send (10 minutes at 10 ms).
MAX_PROBES = 60_000
#: Most logins one storm may send.
MAX_STORM_LOGINS = 20_000


def summary_ms(values: list[float]) -> dict[str, float | int]:
    """Return count, p50, p99 and max of ``values`` (seconds) in milliseconds."""
    return {
        "count": len(values),
        "p50": round(percentile(values, 50) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values, default=0.0) * 1000, 1),
    }


@dataclass
class Prober:
    """Sends ``GET /health`` every 10 ms until stopped, and keeps (sent at, latency)."""

    client: httpx.AsyncClient
    results: list[tuple[float, float]] = field(default_factory=list)
    failures: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, sent: float) -> None:
        try:
            response = await self.client.get("/health", timeout=PROBE_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError:
            self.failures += 1
            return
        self.results.append((sent, time.perf_counter() - sent))

    async def run(self) -> None:
        """Probe until `stop`, then wait for the probes still out."""
        tasks = []
        start = time.perf_counter()
        for number in range(MAX_PROBES):
            if self._stop.is_set():
                break
            delay = start + number * PROBE_INTERVAL - time.perf_counter()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    break
                except asyncio.TimeoutError:
                    pass
            tasks.append(asyncio.create_task(self._one(time.perf_counter())))
        await asyncio.gather(*tasks)

    def stop(self) -> None:
        """Send no more probes."""
        self._stop.set()

    def window(self, start: float, end: float) -> dict[str, float | int]:
        """Latency of the probes sent between ``start`` and ``end``."""
        return summary_ms([lat for sent, lat in self.results if start <= sent <= end])


class ClientLag:
    """This process's own loop lag: if it is large, the load process, not the server, was slow."""

    def __init__(self) -> None:
        """Keep no samples yet."""
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append(time.perf_counter() - before - 0.005)

    def start(self) -> None:
        """Start ticking."""
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> dict[str, float | int]:
        """Stop ticking and return p50/p99/max in ms."""
        if self._task is not None:
            self._task.cancel()
        return summary_ms(self.lags)


async def server_lag(client: httpx.AsyncClient, *, reset: bool) -> dict[str, Any] | None:
    """Read the server's loop lag from ``/lag`` (None where the server has no monitor)."""
    try:
        response = await client.get("/lag", params={"reset": "1"} if reset else None)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:  # noqa: PLR2004 - HTTP OK
        return None
    figures: dict[str, Any] = response.json()
    return figures


def _clients(url: str) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
    return (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=PROBE_TIMEOUT),
        httpx.AsyncClient(base_url=url, limits=limits, timeout=PROBE_TIMEOUT),
    )


async def _login(client: httpx.AsyncClient, user: int, password: str) -> int:
    response = await client.post("/login", data={"username": f"user{user}", "password": password})
    return response.status_code


async def burst(url: str, logins: int, password: str) -> dict[str, object]:
    """Send ``logins`` logins at once; probe /health from 0.5 s before to the last answer."""
    probes, users = _clients(url)
    async with probes, users:
        prober = Prober(probes)
        probing = asyncio.create_task(prober.run())
        own = ClientLag()
        own.start()
        await server_lag(probes, reset=True)
        await asyncio.sleep(0.5)
        await server_lag(probes, reset=True)
        start = time.perf_counter()
        latencies: list[float] = []

        async def timed(user: int) -> int:
            sent = time.perf_counter()
            status = await _login(users, user, password)
            latencies.append(time.perf_counter() - sent)
            return status

        statuses = await asyncio.gather(*(timed(user) for user in range(logins)))
        end = time.perf_counter()
        lag_in_server = await server_lag(probes, reset=False)
        await asyncio.sleep(0.2)
        prober.stop()
        await probing
        client_lag = own.stop()
    codes = Counter(statuses)
    return {
        "logins": logins,
        "ok": codes[200],
        "statuses": {str(code): count for code, count in sorted(codes.items())},
        "wall_s": round(end - start, 3),
        "login_ms": summary_ms(latencies),
        "health_ms": prober.window(start, end),
        "health_failures": prober.failures,
        "server_lag_ms": lag_in_server,
        "client_lag_ms": client_lag,
    }


async def storm(
    url: str,
    password: str,
    *,
    rate: float,
    duration: float,
    timeout: float,
    first_user: int,
    seed: int,
) -> dict[str, object]:
    """Send logins on a Poisson schedule for ``duration`` s; clients give up after ``timeout``."""
    rng = random.Random(seed)
    arrivals: list[float] = []
    at = rng.expovariate(rate)
    while at < duration and len(arrivals) < MAX_STORM_LOGINS:
        arrivals.append(at)
        at += rng.expovariate(rate)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    probes, users = _clients(url)
    async with probes, users:
        prober = Prober(probes)
        probing = asyncio.create_task(prober.run())
        own = ClientLag()
        own.start()
        await server_lag(probes, reset=True)
        await asyncio.sleep(0.5)

        async def client(user: int) -> None:
            sent = time.perf_counter()
            try:
                status = await asyncio.wait_for(_login(users, user, password), timeout)
            except asyncio.TimeoutError:
                outcomes["timed_out"] += 1
                return
            except httpx.HTTPError:
                outcomes["errors"] += 1
                return
            if status == 200:  # noqa: PLR2004 - HTTP OK
                outcomes["ok"] += 1
                latencies.append(time.perf_counter() - sent)
            else:
                outcomes[f"status_{status}"] += 1

        await server_lag(probes, reset=True)
        start = time.perf_counter()
        await harness.open_loop(arrivals, lambda number: client(first_user + number))
        end = time.perf_counter()
        lag_in_server = await server_lag(probes, reset=False)
        prober.stop()
        await probing
        client_lag = own.stop()
    return {
        "offered": len(arrivals),
        "rate_per_s": round(rate, 3),
        "duration_s": duration,
        "timeout_s": timeout,
        "ok": outcomes["ok"],
        "rejected": outcomes["status_503"],
        "timed_out": outcomes["timed_out"],
        "outcomes": dict(sorted(outcomes.items())),
        "goodput_per_s": round(outcomes["ok"] / duration, 3),
        "login_ms": summary_ms(latencies),
        "health_ms": prober.window(start, end),
        "health_failures": prober.failures,
        "server_lag_ms": lag_in_server,
        "client_lag_ms": client_lag,
    }


def main() -> None:
    """Run one phase and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    phases = parser.add_subparsers(dest="phase", required=True)
    one = phases.add_parser("burst")
    one.add_argument("--logins", type=int, default=20)
    many = phases.add_parser("storm")
    many.add_argument("--rate", type=float, required=True)
    many.add_argument("--duration", type=float, default=10.0)
    many.add_argument("--timeout", type=float, default=2.0)
    many.add_argument("--first-user", type=int, default=0)
    many.add_argument("--seed", type=int, default=36439)
    args = parser.parse_args()
    password = os.environ["LOOPSAFE_E2E_PASSWORD"]
    if args.phase == "burst":
        result = asyncio.run(burst(args.url, args.logins, password))
    else:
        result = asyncio.run(
            storm(
                args.url,
                password,
                rate=args.rate,
                duration=args.duration,
                timeout=args.timeout,
                first_user=args.first_user,
                seed=args.seed,
            )
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
