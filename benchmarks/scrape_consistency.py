"""Does every scrape of /metrics describe the whole server? The 12-scrape experiment.

    python benchmarks/scrape_consistency.py --server gunicorn [--multiprocess]
    python benchmarks/scrape_consistency.py --server uvicorn
    python benchmarks/scrape_consistency.py --server django

Starts a real server with 4 worker processes on 127.0.0.1 (a free port):
``gunicorn -w 4 -k uvicorn_worker.UvicornWorker`` or ``uvicorn --workers 4``
serving ``benchmarks/metrics_app.py`` (examples/fastapi_app.py with
``register()`` + ``starlette_route()``, cheap hash parameters), or Django
(``benchmarks/e2e``'s project, loopsafe mode, ``django_view()`` on /metrics)
under ``uvicorn --workers 4``. Sends ``--logins`` logins (an unknown user:
one hash each) on fresh connections from 8 threads, so the kernel spreads
them over the workers, then scrapes /metrics ``--scrapes`` times on fresh
connections and prints ``loopsafe_completed_total`` of each scrape. Every
scrape should read the number of logins. ``--multiprocess`` runs with
prometheus_client's multi-process mode (``PROMETHEUS_MULTIPROC_DIR`` in a
temporary directory). ``--kill-one`` SIGKILLs one worker after the logins
(gunicorn and uvicorn start another) before scraping: its counts must stay.
The loopsafe under test is whatever ``PYTHONPATH``
gives the server (run it once with the old code's ``src`` first to compare).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loopsafe.cli import _harness as harness

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
E2E = ROOT / "benchmarks" / "e2e"
START_TIMEOUT = 60.0


def command(server: str, port: int, workers: int) -> tuple[list[str], Path]:
    """The server's command line and working directory."""
    bind = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn", "-w", str(workers), "-k",
            "uvicorn_worker.UvicornWorker", "-b", f"127.0.0.1:{port}",
            "--log-level", "warning", "benchmarks.metrics_app:app",
        ], ROOT  # fmt: skip
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", "benchmarks.metrics_app:app", *bind,
            "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        ], ROOT  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", "e2eproject.asgi:application", *bind,
        "--workers", str(workers), "--log-level", "warning", "--no-access-log",
        "--lifespan", "off",
    ], E2E  # fmt: skip


def environment(server: str, tmp: Path, *, multiprocess: bool) -> dict[str, str]:
    """The server's environment: cheap hashes, a private runtime directory."""
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({"LOOPSAFE_PROFILE": "cheap", "LOOPSAFE_RUNTIME_DIR": str(tmp / "run")})
    if multiprocess:
        (tmp / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "prom")
    if server == "django":
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "e2eproject.settings",
                "LOOPSAFE_E2E_DB": str(tmp / "db.sqlite3"),
                "LOOPSAFE_E2E_MODE": "loopsafe",
                "LOOPSAFE_E2E_PASSWORD": "scrape-experiment-password",
                "LOOPSAFE_E2E_ITERATIONS": "1000",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(E2E), env.get("PYTHONPATH")])),
            }
        )
        seeded = subprocess.run(
            [sys.executable, "-m", "e2eproject.seed", "--users", "1"],
            cwd=E2E, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if seeded.returncode:
            raise RuntimeError(f"seeding failed:\n{seeded.stderr}")
    return env


@contextlib.contextmanager
def running(server: str, workers: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run the server for the block; yield its base URL; stop it by its PID."""
    port = harness.free_port()
    argv, cwd = command(server, port, workers)
    url = f"http://127.0.0.1:{port}"
    ready = f"{url}/health"
    with harness.started(argv, env=env, cwd=cwd, log=log, ready=ready, limit=START_TIMEOUT):
        time.sleep(1.0)  # every worker up (the first one answers before the others)
        yield url


def login(url: str, server: str, index: int) -> int:
    """One login of an unknown user on a fresh connection: one hash; the status."""
    name = f"nobody-{index}"
    with httpx.Client(timeout=30.0) as client:
        if server == "django":
            answer = client.post(f"{url}/login", data={"username": name, "password": "x"})
        else:
            answer = client.post(f"{url}/login", json={"username": name, "password": "x"})
    return answer.status_code


def kill_one_worker(url: str) -> int:
    """SIGKILL the worker that answers ``/bench/pid``; wait until others answer in its place."""
    victim = int(httpx.get(f"{url}/bench/pid", timeout=10.0).json()["pid"])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30.0
    seen: set[int] = set()
    while time.monotonic() < deadline and len(seen) < 4:  # noqa: PLR2004 - the four workers
        with contextlib.suppress(httpx.HTTPError):
            pid = int(httpx.get(f"{url}/bench/pid", timeout=2.0).json()["pid"])
            if pid != victim:
                seen.add(pid)
        time.sleep(0.05)
    return victim


def completed(url: str) -> float:
    """``loopsafe_completed_total`` summed over pools, from one scrape on a fresh connection."""
    text = httpx.get(f"{url}/metrics", timeout=10.0).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loopsafe_completed_total":
                total += sample.value
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the experiment once and print (or write) what each scrape read."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["gunicorn", "uvicorn", "django"], required=True)
    parser.add_argument("--multiprocess", action="store_true")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--scrapes", type=int, default=12)
    parser.add_argument(
        "--kill-one",
        action="store_true",
        help="SIGKILL one worker after the logins (the server starts another) before scraping",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="loopsafe-scrapes-") as name:
        tmp = Path(name)
        env = environment(args.server, tmp, multiprocess=args.multiprocess)
        with running(args.server, args.workers, env, tmp / "server.log") as url:
            with concurrent.futures.ThreadPoolExecutor(8) as threads:
                statuses = list(
                    threads.map(lambda i: login(url, args.server, i), range(args.logins))
                )
            killed = kill_one_worker(url) if args.kill_one else None
            reads = [completed(url) for _ in range(args.scrapes)]
    result = {
        "server": args.server,
        "mode": "multiprocess" if args.multiprocess else "default",
        "workers": args.workers,
        "logins": args.logins,
        "login_statuses": sorted(set(statuses)),
        "completed_per_scrape": [int(value) for value in reads],
        "killed_a_worker": killed is not None,
        "every_scrape_whole": all(int(value) == args.logins for value in reads),
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
