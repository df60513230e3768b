"""A real Prometheus scrapes a real gunicorn -w 4 through a storm; checked against the client.

    python benchmarks/prometheus_loop.py run [--rate 40] [--storm 40] [--json out.json]

1. Starts ``gunicorn -w 4 -k uvicorn_worker.UvicornWorker benchmarks.metrics_app:app``
   on 127.0.0.1 (a free port; examples/fastapi_app.py at Django 6.1's Argon2
   defaults, ``LOOPSAFE_HOST_LIMIT=auto``, metrics served as docs/deploying.md says).
2. Starts Debian's ``prometheus`` on 127.0.0.1 (a free port) with a generated
   config in a temporary directory: ``scrape_interval`` and
   ``evaluation_interval`` 1 s, its TSDB in the same directory, and the shipped
   alert rules (``deploy/prometheus/loopsafe-alerts.yml``) copied with every
   ``for:`` shortened to 5 s (the only change: the expressions are the shipped ones).
3. After a quiet baseline (so that a 1-minute window reaches back before the
   storm), a load generator in another process sends signups (one Argon2 hash
   each, no dry-run admission check) on an open-loop Poisson schedule for
   ``--storm`` seconds and records every answer's time and status.
4. Meanwhile, and after the storm, polls Prometheus' alerts every second until
   ``LoopsafeRefusalsSustained`` has fired and resolved.
5. Evaluates the shipped KEDA queries and alert expressions through
   Prometheus' HTTP API, and compares the KEDA refusal rate
   (``sum(rate(loopsafe_refused_total[1m]))``) at several instants with the
   refusals the load generator saw in the same minute.

Everything it starts is stopped by PID. Prints one JSON document (and writes
it with ``--json``); ``tests/test_deploy_prometheus.py`` runs it and checks it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from loopsafe.cli import _harness as harness
from loopsafe.cli._storm import poisson_arrivals

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "loopsafe-alerts.yml"
KEDA = ROOT / "deploy" / "keda" / "scaledobject.yaml"
ALERT = "LoopsafeRefusalsSustained"
TEST_FOR = "5s"
BASELINE = 22.0
RESOLVE_TIMEOUT = 100.0


def test_rules(directory: Path) -> Path:
    """The shipped rules with every ``for:`` set to TEST_FOR (the expressions untouched)."""
    text = re.sub(r"(?m)^(\s+for:\s*)\S+$", rf"\g<1>{TEST_FOR}", RULES.read_text())
    path = directory / "loopsafe-alerts-test.yml"
    path.write_text(text)
    return path


def prometheus_config(directory: Path, target: str, rules: Path) -> Path:
    """A Prometheus config scraping ``target`` every second as job ``web``."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "web", "static_configs": [{"targets": [target]}]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _storm(url: str, rate: float, seconds: float) -> list[dict[str, Any]]:
    """Open loop: Poisson arrivals of signups for ``seconds``; every answer's time and status."""
    answers: list[dict[str, Any]] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)

    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:

        async def one(index: int) -> None:
            body = {"username": f"storm-{os.getpid()}-{index}", "password": "storm-password-1"}
            try:
                answer = await client.post("/signup", json=body)
            except httpx.HTTPError as exc:
                answers.append({"t": time.time(), "status": type(exc).__name__})
                return
            overloaded = answer.status_code == 503 and "retry-after" in answer.headers  # noqa: PLR2004
            answers.append({"t": time.time(), "status": answer.status_code, "refused": overloaded})

        await harness.open_loop(poisson_arrivals(rate, seconds, random.Random()), one)
    return answers


def load(url: str, rate: float, seconds: float, out: Path) -> int:
    """The load generator's process: run the storm, write the answers."""
    began = time.time()
    answers = asyncio.run(_storm(url, rate, seconds))
    out.write_text(json.dumps({"began": began, "ended": time.time(), "answers": answers}))
    return 0


def query(api: str, expression: str, at: float) -> list[dict[str, Any]]:
    """Evaluate ``expression`` at ``at`` through Prometheus' HTTP API."""
    answer = httpx.get(f"{api}/api/v1/query", params={"query": expression, "time": at}, timeout=10)
    answer.raise_for_status()
    data = answer.json()
    if data["status"] != "success":
        raise RuntimeError(f"{expression}: {data}")
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def alert_state(api: str) -> str:
    """The refusal alert's state now: inactive, pending or firing."""
    alerts = httpx.get(f"{api}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    states = {a["state"] for a in alerts if a["labels"].get("alertname") == ALERT}
    return "firing" if "firing" in states else "pending" if states else "inactive"


def shipped_expressions() -> dict[str, str]:
    """Every shipped alert expression and KEDA query, by name."""
    rules = yaml.safe_load(RULES.read_text())["groups"]
    out = {rule["alert"]: rule["expr"] for group in rules for rule in group["rules"]}
    keda = yaml.safe_load(KEDA.read_text())["spec"]["triggers"]
    for index, trigger in enumerate(keda):
        out[f"keda-{index}"] = trigger["metadata"]["query"]
    return out


def run(rate: float, storm: float) -> dict[str, Any]:  # noqa: C901, PLR0915 - one timeline, top to bottom
    """The whole experiment; the figures as a dict."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise RuntimeError("needs Debian's prometheus (apt-get install prometheus)")
    with tempfile.TemporaryDirectory(prefix="loopsafe-prom-") as name:
        tmp = Path(name)
        app_port, prom_port = harness.free_port(), harness.free_port()
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update({"LOOPSAFE_RUNTIME_DIR": str(tmp / "run"), "LOOPSAFE_HOST_LIMIT": "auto"})
        app = [
            sys.executable, "-m", "gunicorn", "-w", "4", "-k", "uvicorn_worker.UvicornWorker",
            "-b", f"127.0.0.1:{app_port}", "--log-level", "warning", "benchmarks.metrics_app:app",
        ]  # fmt: skip
        app_url = f"http://127.0.0.1:{app_port}"
        api = f"http://127.0.0.1:{prom_port}"
        config = prometheus_config(tmp, f"127.0.0.1:{app_port}", test_rules(tmp))
        prom = [
            prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn",
        ]  # fmt: skip
        timeline: list[tuple[float, str]] = []
        with (
            harness.started(app, env=env, cwd=ROOT, log=tmp / "app.log", ready=f"{app_url}/health"),
            harness.started(
                prom, env=env, cwd=ROOT, log=tmp / "prometheus.log", ready=f"{api}/-/ready"
            ),
        ):
            time.sleep(BASELINE)
            answers_path = tmp / "answers.json"
            argv = [sys.executable, __file__, "load", "--url", app_url, "--rate", str(rate)]
            argv += ["--seconds", str(storm), "--out", str(answers_path)]
            loader = subprocess.Popen(argv, cwd=ROOT, env=env)
            try:
                last = ""
                while loader.poll() is None:
                    state = alert_state(api)
                    if state != last:
                        timeline.append((time.time(), state))
                        last = state
                    time.sleep(1.0)
            finally:
                if loader.poll() is None:
                    loader.kill()
                loader.wait(timeout=60)
            load_figures = json.loads(answers_path.read_text())
            deadline = time.monotonic() + RESOLVE_TIMEOUT
            while time.monotonic() < deadline:
                state = alert_state(api)
                if state != last:
                    timeline.append((time.time(), state))
                    last = state
                if state == "inactive" and any(s == "firing" for _, s in timeline):
                    break
                time.sleep(1.0)
            time.sleep(2.0)  # the final counters scraped
            answers = load_figures["answers"]
            began, ended = load_figures["began"], load_figures["ended"]
            refused_at = sorted(a["t"] for a in answers if a.get("refused"))
            # The KEDA refusal rate against the client's count, in the same minute.
            keda_rate = shipped_expressions()["keda-0"]
            instants = [began + storm * f for f in (0.5, 0.75, 1.0)]
            comparisons = []
            for at in instants:
                result = query(api, keda_rate, at)
                server = float(result[0]["value"][1]) if result else 0.0
                client = sum(1 for t in refused_at if at - 60 < t <= at) / 60
                comparisons.append(
                    {
                        "at_s": round(at - began, 1),
                        "prometheus_per_s": server,
                        "client_per_s": client,
                    }
                )
            now = time.time()
            totals = {}
            for counter in ("refused", "completed", "admitted"):
                result = query(api, f"sum(loopsafe_{counter}_total)", now)
                totals[counter] = float(result[0]["value"][1]) if result else 0.0
            evaluated = {
                name: [(r["metric"], r["value"][1]) for r in query(api, expression, ended)]
                for name, expression in shipped_expressions().items()
            }
    statuses: dict[str, int] = {}
    for answer in answers:
        statuses[str(answer["status"])] = statuses.get(str(answer["status"]), 0) + 1
    return {
        "command": f"python benchmarks/prometheus_loop.py run --rate {rate:g} --storm {storm:g}",
        "cores": harness.usable_cpus(),
        "load_average": os.getloadavg(),
        "storm_seconds": round(ended - began, 1),
        "requests": len(answers),
        "statuses": statuses,
        "client_refused": len(refused_at),
        "client_created": statuses.get("201", 0),
        "prometheus_totals_after": totals,
        "rate_comparisons": comparisons,
        "alert_timeline_s": [(round(t - began, 1), state) for t, state in timeline],
        "evaluated_at_storm_end": evaluated,
        "test_rules_for": TEST_FOR,
    }


def main(argv: list[str] | None = None) -> int:
    """``run`` the experiment, or be the load generator (``load``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("--rate", type=float, default=40.0, help="signups per second")
    run_parser.add_argument("--storm", type=float, default=40.0, help="seconds")
    run_parser.add_argument("--json", type=Path)
    load_parser = sub.add_parser("load")
    load_parser.add_argument("--url", required=True)
    load_parser.add_argument("--rate", type=float, required=True)
    load_parser.add_argument("--seconds", type=float, required=True)
    load_parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "load":
        return load(args.url, args.rate, args.seconds, args.out)
    figures = run(args.rate, args.storm)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
