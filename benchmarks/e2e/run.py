"""End-to-end benchmark: a real Django server under a login burst and a login storm.

    python benchmarks/e2e/run.py                     # Django of this interpreter, ~3 minutes
    python benchmarks/e2e/run.py --python .venv312/bin/python   # another venv (Django 6.x)
    python benchmarks/e2e/run.py --quick --json e2e.json        # a smoke run in ~40 s

For each mode (``stock``: Django's ``ModelBackend``; ``loopsafe``: loopsafe's
drop-in backend) and each kind of stored hash (``fresh``: made at the
installed Django's defaults; ``rehash``: made at two thirds of the iterations,
so every login also rehashes and saves, as after a Django upgrade), it:

1. seeds a fresh SQLite database with users (``e2eproject.seed``, in the
   server's interpreter, which also measures one login's CPU cost with
   Django's own hashers: capacity = usable cores / that cost),
2. starts ``uvicorn e2eproject.asgi:application`` on 127.0.0.1 (a free port,
   one worker) in a subprocess,
3. runs ``load.py`` in another process: a burst of ``--burst`` logins at
   once, then (against a freshly seeded database and a new server) an open-loop
   storm at ``--storm-load`` x capacity for ``--storm-duration`` seconds with
   a ``--timeout`` client timeout, probing ``/health`` every 10 ms,
4. stops the server it started (by its pid).

It prints a table and, with ``--json``, writes every figure. ``load-lag`` is
the load process's own worst loop lag: when it is large, the client (sharing
the machine's cores with the server) was late, and the server's figures are
pessimistic. ``loop max`` is the server's own worst event-loop lag (its
``/lag`` endpoint runs loopsafe's `LoopLagMonitor` inside uvicorn). The loopsafe
mode needs ``loopsafe.django`` in the server's interpreter; when it cannot be
imported the mode is skipped with the reason. Every step has a time limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loopsafe.cli import _harness as harness
from loopsafe.cli._harness import usable_cpus
from loopsafe.cli._json import reproducing_command

HERE = Path(__file__).resolve().parent
#: Seconds to wait for the server to answer /health after it starts.
START_TIMEOUT = 30.0
#: Seconds a load phase may take beyond its own length before it is stopped.
PHASE_SLACK = 240.0
SCHEMA = 1


def server_env(database: Path, mode: str, password: str, iterations: int | None) -> dict[str, str]:
    """Return the environment of the seed step and the server."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "e2eproject.settings",
            "LOOPSAFE_E2E_DB": str(database),
            "LOOPSAFE_E2E_MODE": mode,
            "LOOPSAFE_E2E_PASSWORD": password,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")])),
        }
    )
    env.pop("LOOPSAFE_E2E_ITERATIONS", None)
    if iterations is not None:
        env["LOOPSAFE_E2E_ITERATIONS"] = str(iterations)
    return env


def can_import(python: str, module: str) -> str | None:
    """Return None if ``python`` can import ``module``, else the reason."""
    probe = subprocess.run(
        [python, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit status {probe.returncode}"


def seed(python: str, env: dict[str, str], users: int, *, stale: bool) -> dict[str, object]:
    """Seed the database and return what the seed step measured."""
    command = [python, "-m", "e2eproject.seed", "--users", str(users)]
    if stale:
        command.append("--stale")
    done = subprocess.run(
        command, cwd=HERE, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def queue_budget(timeout: float, service_s: float) -> float:
    """Return MAX_QUEUE_WAIT for clients with ``timeout``, by ``loopsafe storm``'s rule."""
    return round(max(timeout - 2 * service_s, timeout / 4), 3)


@contextlib.contextmanager
def server(python: str, env: dict[str, str], log: Path) -> object:
    """Run uvicorn on a free 127.0.0.1 port for the block; yield its base URL.

    Its output (warnings, one per refused login) goes to ``log``.
    """
    port = harness.free_port()
    command = [
        python,
        "-m",
        "uvicorn",
        "e2eproject.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        "--lifespan",
        "off",
    ]
    url = f"http://127.0.0.1:{port}"
    ready = f"{url}/health"
    with harness.started(command, env=env, cwd=HERE, log=log, ready=ready, limit=START_TIMEOUT):
        yield url


def load(url: str, env: dict[str, str], phase: list[str], limit: float) -> dict[str, object]:
    """Run one phase of ``load.py`` against ``url`` and return its JSON."""
    command = [sys.executable, str(HERE / "load.py"), "--url", url, *phase]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=limit, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load process failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_case(
    args: argparse.Namespace, mode: str, *, stale: bool, password: str
) -> dict[str, object]:
    """Seed, serve and load one (mode, stored hash) case: the burst, then the storm."""
    cores = usable_cpus()
    case: dict[str, object] = {"mode": mode, "rehash": stale}
    with tempfile.TemporaryDirectory(prefix="loopsafe-e2e-") as folder:
        # Enough users that no storm login finds a hash an earlier one upgraded.
        users = args.burst + args.max_storm_logins
        for phase in ("burst", "storm"):
            database = Path(folder) / f"{phase}.sqlite3"
            env = server_env(database, mode, password, args.iterations)
            seeded = seed(args.python, env, users, stale=stale)
            cpu = float(str(seeded["cpu_s_per_login"]))
            capacity = cores / cpu
            budget = queue_budget(args.timeout, cpu)
            if mode == "loopsafe":
                env["LOOPSAFE_E2E_MAX_QUEUE_WAIT"] = str(budget)
                case["max_queue_wait_s"] = budget
            case.update(
                {
                    "django": seeded["django"],
                    "python": seeded["python"],
                    "iterations": seeded["iterations"],
                    "stored_iterations": seeded["stored_iterations"],
                    "cpu_s_per_login": seeded["cpu_s_per_login"],
                    "capacity_per_s": round(capacity, 3),
                }
            )
            with server(args.python, env, Path(folder) / f"server-{phase}.log") as url:
                if phase == "burst":
                    case["burst"] = load(
                        str(url), env, ["burst", "--logins", str(args.burst)], PHASE_SLACK
                    )
                else:
                    rate = args.storm_load * capacity
                    storm = load(
                        str(url),
                        env,
                        [
                            "storm",
                            "--rate",
                            f"{rate:.4f}",
                            "--duration",
                            str(args.storm_duration),
                            "--timeout",
                            str(args.timeout),
                            "--first-user",
                            str(args.burst),
                        ],
                        args.storm_duration + args.timeout + PHASE_SLACK,
                    )
                    storm["load"] = args.storm_load
                    storm["goodput"] = round(float(str(storm["goodput_per_s"])) / capacity, 3)
                    case["storm"] = storm
    return case


def _lag_max(phase: dict[str, Any]) -> str:
    lag = phase.get("server_lag_ms")
    return f"{lag['max_ms']:.1f}" if isinstance(lag, dict) else "-"


def show(results: list[dict[str, object]]) -> None:
    """Print one line per case (all times in ms but the burst's length)."""
    head = (
        f"{'django':<8} {'mode':<9} {'hashes':<7} | {'burst s':>7} {'ok':>5} "
        f"{'health p50':>10} {'p99':>8} {'max':>8} {'loop max':>8} | {'goodput':>7} {'503':>4} "
        f"{'t/o':>4} {'health p50':>10} {'p99':>8} {'max':>8} {'loop max':>8} | {'load-lag':>8}"
    )
    print(head)
    print("-" * len(head))
    for case in results:
        burst = case.get("burst")
        storm = case.get("storm")
        if not isinstance(burst, dict) or not isinstance(storm, dict):
            print(f"{case.get('mode')}: skipped: {case.get('skipped')}")
            continue
        bh, sh = burst["health_ms"], storm["health_ms"]
        print(
            f"{case['django']!s:<8} {case['mode']!s:<9} "
            f"{'rehash' if case['rehash'] else 'fresh':<7} | "
            f"{burst['wall_s']:>7.2f} {burst['ok']:>2}/{burst['logins']:<2} "
            f"{bh['p50']:>10.1f} {bh['p99']:>8.1f} {bh['max']:>8.1f} {_lag_max(burst):>8} | "
            f"{storm['goodput']:>7.2f} {storm['rejected']:>4} {storm['timed_out']:>4} "
            f"{sh['p50']:>10.1f} {sh['p99']:>8.1f} {sh['max']:>8.1f} {_lag_max(storm):>8} | "
            f"{max(burst['client_lag_ms']['max'], storm['client_lag_ms']['max']):>8.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the cases asked for; return 0 when every case ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="the server's interpreter (default: this one)"
    )
    parser.add_argument("--modes", nargs="+", choices=["stock", "loopsafe"], default=None)
    parser.add_argument(
        "--hashes",
        nargs="+",
        choices=["fresh", "rehash"],
        default=["fresh", "rehash"],
        help="stored hashes at the defaults, and/or stale ones that every login upgrades",
    )
    parser.add_argument("--burst", type=int, default=20, help="logins in the burst")
    parser.add_argument("--storm-load", type=float, default=3.0, help="x capacity")
    parser.add_argument("--storm-duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout, seconds")
    parser.add_argument(
        "--iterations", type=int, default=None, help="PBKDF2 iterations (default: Django's)"
    )
    parser.add_argument("--quick", action="store_true", help="cheap PBKDF2, short phases")
    parser.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    args = parser.parse_args(argv)
    if os.sep in args.python:
        # Subprocesses run in this folder: make a relative path absolute, but do
        # not resolve symlinks (a venv's python is one, and must stay the venv's).
        args.python = str(Path(args.python).absolute())
    if args.quick:
        # ~35 ms a hash: cheap, yet still most of a login's cost (a cheaper hash
        # would measure Django's request handling, not the hashing).
        args.iterations = args.iterations or 150_000
        args.burst = min(args.burst, 8)
        args.storm_duration = min(args.storm_duration, 2.0)
        args.timeout = min(args.timeout, 1.0)
    if min(args.burst, args.storm_load, args.storm_duration, args.timeout) <= 0:
        parser.error("--burst, --storm-load, --storm-duration and --timeout must be positive")
    # Bounded: the most logins a storm may send (its rate is known only after seeding).
    args.max_storm_logins = 2_000
    modes = args.modes or ["stock", "loopsafe"]
    password = secrets.token_urlsafe(16)
    results: list[dict[str, object]] = []
    started = time.perf_counter()
    for mode in modes:
        # The package imports without settings; its backends module needs them.
        reason = can_import(args.python, "loopsafe.django") if mode == "loopsafe" else None
        reason = reason or can_import(args.python, "django")
        for kind in args.hashes:
            if reason is not None:
                results.append({"mode": mode, "rehash": kind == "rehash", "skipped": reason})
                continue
            print(f"running {mode} / {kind} ...", file=sys.stderr, flush=True)
            results.append(run_case(args, mode, stale=kind == "rehash", password=password))
    show(results)
    if args.json:
        document = {
            "schema": SCHEMA,
            "kind": "e2e",
            "command": reproducing_command("python benchmarks/e2e/run.py", argv or sys.argv[1:]),
            "machine": {
                "usable_cpus": usable_cpus(),
                "python": platform.python_version(),
                "platform": platform.platform(terse=True),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
            "config": {
                "burst": args.burst,
                "storm_load": args.storm_load,
                "storm_duration_s": args.storm_duration,
                "timeout_s": args.timeout,
                "iterations": args.iterations,
                "health_interval_ms": 10,
            },
            "results": results,
            "elapsed_s": round(time.perf_counter() - started, 1),
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0 if all("skipped" not in case for case in results) else 1


if __name__ == "__main__":
    sys.exit(main())
