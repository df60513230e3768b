"""A real server in a child process, and a login burst against it while /health is probed.

Shared by the end-to-end tests of the Litestar and aiohttp integrations: the
server runs in its own interpreter (uvicorn, or aiohttp's own runner) on
127.0.0.1, and the load comes from the test's process through httpx.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from loopsafe.cli._harness import free_port, percentile, stop

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
FORM = {"username": "ada", "password": "correct horse battery staple"}


@dataclass(frozen=True)
class Burst:
    """What a burst saw: /health latencies (seconds) and the logins' status codes."""

    latencies: list[float]
    statuses: list[int]

    def p99(self) -> float:
        """Nearest-rank 99th percentile of the /health latencies."""
        return percentile(self.latencies, 99)


@contextmanager
def serving(argv: list[str], env: dict[str, str]) -> Iterator[str]:
    """Run ``argv`` (with ``{port}`` filled in) from the repository root; yield its base URL.

    The child is terminated by its pid afterwards, killed if it does not stop.
    """
    port = free_port()
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    for key in ("LOOPSAFE_PROFILE", "LOOPSAFE_MAX_QUEUE_WAIT"):
        if key not in env:
            child_env.pop(key, None)
    server = subprocess.Popen(
        [sys.executable, *(arg.format(port=port) for arg in argv)], cwd=ROOT, env=child_env
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


async def wait_ready(client: httpx.AsyncClient, limit: float = 30) -> None:
    """Poll /health until the server answers (bounded by ``limit`` seconds)."""
    with anyio.fail_after(limit):
        while True:
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await anyio.sleep(0.1)


async def burst_with_probes(base_url: str, logins: int = 20, limit: float = 90) -> Burst:
    """Register one user, then send ``logins`` concurrent logins while probing /health.

    Probes run every 10 ms until every login is answered (at most 2000 probes,
    at most ``limit`` seconds in all).
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=limit) as client:
        await wait_ready(client)
        registered = await client.post("/register", json=FORM)
        assert registered.status_code == 201, registered.text
        latencies: list[float] = []
        statuses: list[int] = []

        async def login() -> None:
            statuses.append((await client.post("/login", json=FORM)).status_code)

        async def burst() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(logins):
                    tg.start_soon(login)

        async def probe() -> None:
            while len(statuses) < logins and len(latencies) < 2000:
                start = time.perf_counter()
                assert (await client.get("/health")).status_code == 200
                latencies.append(time.perf_counter() - start)
                await anyio.sleep(0.01)

        with anyio.fail_after(limit):
            async with anyio.create_task_group() as tg:
                tg.start_soon(burst)
                tg.start_soon(probe)
    return Burst(latencies, statuses)
