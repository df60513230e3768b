"""Login budgets shared by worker processes: ``memory://`` (one per process) vs Redis (one in all).

Starts a real ``redis-server`` on 127.0.0.1 (a free port, a temporary folder,
no persistence; stopped by its PID at the end), then runs 4 worker processes
that each try ATTEMPTS logins on one account, at the same moment, with
``LoginThrottle(per_account="N/minute")``: first with in-memory storage, then
with Redis. Prints the attempts each process let through and the total.

    python benchmarks/throttle_redis.py [N] [ATTEMPTS]
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
WORKERS = 4
WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from loopsafe import Throttled
    from loopsafe.throttle import LoginThrottle

    uri, start, attempts, budget = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    throttle = LoginThrottle(per_account=f"{budget}/minute", per_client=None, storage=uri)

    async def run():
        passed = 0
        while time.time() < start:
            time.sleep(0.001)
        for n in range(attempts):
            try:
                await throttle.acheck("one-account", f"198.51.100.{n}")
            except Throttled:
                continue
            passed += 1
        print(passed)

    asyncio.run(run())
    """
)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_workers(uri: str, attempts: int, budget: int) -> list[int]:
    """Start the workers together; return what each let through."""
    start = time.time() + 2.0
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, str(start), str(attempts), str(budget)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(WORKERS)
    ]
    return [int(worker.communicate(timeout=120)[0]) for worker in workers]


def main() -> None:
    """Run both storages and print the table."""
    budget = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    attempts = int(sys.argv[2]) if len(sys.argv) > 2 else 25  # noqa: PLR2004 - argv positions
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        redis = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            print(f"{WORKERS} processes x {attempts} attempts on one account, budget {budget}")
            for uri in ("memory://", f"redis://127.0.0.1:{port}/0"):
                passed = run_workers(uri, attempts, budget)
                label = uri.split(":", 1)[0]
                print(f"{label:7} per process {passed}, total {sum(passed)} (budget {budget})")
        finally:
            redis.terminate()
            redis.wait(timeout=10)


if __name__ == "__main__":
    main()
