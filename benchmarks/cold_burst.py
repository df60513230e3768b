"""A cold burst: 60 logins at once at a freshly started app, each client giving up after 2 s.

What a new user meets when a deploy restarts the server under load. Each app
is started fresh (a new process on 127.0.0.1, a free port) with loopsafe's
DEFAULT settings and PBKDF2-SHA256 at Django 6.1's 1,500,000 iterations:

- ``fastapi``: FastAPI with ``loopsafe.starlette.lifespan()``;
- ``litestar``: Litestar with ``LoopsafePlugin()``;
- ``aiohttp``: ``loopsafe.aiohttp.setup()``, on aiohttp's own runner;
- ``django``: Django (this interpreter's) with loopsafe's backend and
  ``OverloadMiddleware``: the e2e project (benchmarks/e2e), seeded with its
  own runner's steps;
- ``fastapi_users``: fastapi-users' ``PasswordHelper`` in a FastAPI app with
  ``lifespan()``.

The apps are in benchmarks/cold_burst_apps.py (Django's in benchmarks/e2e);
servers are started and stopped with the e2e runner's and the shared harness's
(``loopsafe.cli._harness``) helpers. Once ``/health`` answers, another process sends the 60 logins
together (httpx, each bounded to 2 s in total) and counts: answered (200 or
401), refused (503) and timed out. ``--src`` picks the loopsafe under test
(a checkout's ``src`` folder), so two checkouts run side by side, interleaved,
in one session:

    flock <lock> python benchmarks/cold_burst.py --src ../main/src --src src [--rounds 2]

Prints one row per app and checkout (the median over rounds), with the
machine's core count and load average, and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "e2e"))

from run import seed, server, server_env  # noqa: E402 - benchmarks/e2e's runner

from loopsafe import PBKDF2Hasher  # noqa: E402 - after the runners it shares
from loopsafe.cli import _harness as harness  # noqa: E402 - ditto

if TYPE_CHECKING:
    from collections.abc import Iterator

APPS = ("fastapi", "litestar", "aiohttp", "django", "fastapi_users")
PASSWORD = "correct horse battery staple"
ITERATIONS = 1_500_000
LOGINS = 60
CLIENT_TIMEOUT = 2.0

LOAD = r"""
import asyncio, json, sys
import httpx

async def main(base, logins, timeout, password, django):
    counts = {"answered": 0, "refused": 0, "timed_out": 0, "other": 0}
    async with httpx.AsyncClient(base_url=base, timeout=None) as client:
        async def login(i):
            if django:
                send = client.post("/login", data={"username": f"user{i}", "password": password})
            else:
                send = client.post("/login", json={"password": password})
            try:
                response = await asyncio.wait_for(send, timeout)
            except (asyncio.TimeoutError, httpx.TimeoutException):
                counts["timed_out"] += 1
                return
            if response.status_code in (200, 401):
                counts["answered"] += 1
            elif response.status_code == 503:
                counts["refused"] += 1
            else:
                counts["other"] += 1
        await asyncio.gather(*(login(i) for i in range(logins)))
    print(json.dumps(counts))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4],
                 sys.argv[5] == "1"))
"""


def stored_hash() -> str:
    """One PBKDF2 hash of the password at Django 6.1's cost (made here, not by the servers)."""
    return PBKDF2Hasher(iterations=ITERATIONS).hash(PASSWORD)


def env_for(src: Path) -> dict[str, str]:
    """This environment with ``src`` first on the path and no loopsafe overrides."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LOOPSAFE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(HERE)])
    return env


@contextlib.contextmanager
def web_server(app: str, env: dict[str, str], stored: str) -> Iterator[str]:
    """Start ``app`` (not Django) fresh on a free port; yield its URL; stop it by its pid."""
    child = {**env, "COLD_BURST_APP": app, "COLD_BURST_STORED": stored}
    if app == "aiohttp":
        argv = [str(HERE / "cold_burst_apps.py"), "--port"]
    else:
        argv = harness.uvicorn("cold_burst_apps:app", access_log=False)
    with harness.serving(argv, env=child, cwd=HERE) as (url, _):
        yield url


@contextlib.contextmanager
def django_server(src: Path) -> Iterator[str]:
    """Seed the e2e project's database at Django 6.1's cost and serve it fresh (loopsafe mode)."""
    with tempfile.TemporaryDirectory(prefix="loopsafe-cold-") as folder:
        env = server_env(Path(folder) / "db.sqlite3", "loopsafe", PASSWORD, ITERATIONS)
        env = {k: v for k, v in env.items() if not k.startswith("LOOPSAFE_") or "_E2E_" in k}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE / "e2e"), str(src)])
        seed(sys.executable, env, LOGINS, stale=False)
        with server(sys.executable, env, Path(folder) / "server.log") as url:
            yield str(url)


def burst(url: str, *, django: bool) -> dict[str, int]:
    """Send the 60 logins from another process; their counts."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD,
            url,
            str(LOGINS),
            str(CLIENT_TIMEOUT),
            PASSWORD,
            "1" if django else "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    counts: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def label(src: Path) -> str:
    """A checkout's name for the table: the folder holding its ``src`` (``main``...)."""
    return src.parent.name or str(src)


def run_one(app: str, src: Path, stored: str) -> dict[str, int]:
    """One fresh server of ``app`` with the loopsafe in ``src``, one burst."""
    serving = django_server(src) if app == "django" else web_server(app, env_for(src), stored)
    with serving as url:
        time.sleep(0.5)  # started, idle: as a server is when traffic returns
        return burst(url, django=app == "django")


def main() -> None:
    """Run every app against every ``--src``, interleaved, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", type=Path, help="a loopsafe src folder")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--app", action="append", choices=APPS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sources = [path.resolve() for path in (args.src or [HERE.parent / "src"])]
    apps = args.app or list(APPS)
    stored = stored_hash()
    rows: dict[tuple[str, str], list[dict[str, int]]] = {}
    started = time.monotonic()
    for round_ in range(args.rounds):
        order = apps if round_ % 2 == 0 else list(reversed(apps))
        for app in order:
            for src in sources if round_ % 2 == 0 else list(reversed(sources)):
                counts = run_one(app, src, stored)
                rows.setdefault((app, label(src)), []).append(counts)
                print(f"round {round_ + 1} {app:14} {label(src)}: {counts}", flush=True)
    load = os.getloadavg()
    print(
        f"\n{LOGINS} logins at once, {CLIENT_TIMEOUT:g} s client timeout, PBKDF2 "
        f"{ITERATIONS:,} iterations, default settings; {harness.load_line()}, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
        f"UTC, {args.rounds} round(s), medians, {time.monotonic() - started:.0f} s"
    )
    print(f"{'app':14} {'loopsafe':20} {'answered':>8} {'refused':>8} {'timed out':>9}")
    summary = []
    for (app, src), runs in rows.items():
        medians = {
            key: statistics.median(run[key] for run in runs)
            for key in ("answered", "refused", "timed_out", "other")
        }
        summary.append({"app": app, "src": src, "runs": runs, **medians})
        print(
            f"{app:14} {src:20} {medians['answered']:8g} {medians['refused']:8g} "
            f"{medians['timed_out']:9g}"
            + (f"  other {medians['other']:g}" if medians["other"] else "")
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"load": load, "rows": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
