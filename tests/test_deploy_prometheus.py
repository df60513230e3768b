"""A real Prometheus scrapes gunicorn -w 4 through a signup storm: the shipped queries are true.

Runs ``benchmarks/prometheus_loop.py run`` (Debian's ``prometheus`` on
127.0.0.1 with a generated config in a temporary directory, the shipped alert
rules with ``for:`` shortened to 5 s, a storm from another process) and checks
its figures against what the load generator counted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(330),
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="needs Debian's prometheus (CI installs it)"
    ),
]


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict:
    """One run of the experiment (about 2 minutes)."""
    out = tmp_path_factory.mktemp("prometheus") / "figures.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "benchmarks/prometheus_loop.py", "run", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_storm_was_refused_in_part(figures):
    """The storm exceeded the host: some signups were created, many refused with Retry-After."""
    assert figures["client_created"] > 0
    assert figures["client_refused"] > figures["storm_seconds"]  # > 1 refusal per second


def test_counters_sum_the_host(figures):
    """After the storm, the host-wide counters equal what the client saw, call for call."""
    totals = figures["prometheus_totals_after"]
    assert totals["refused"] == figures["client_refused"]
    assert totals["completed"] >= figures["client_created"]


def test_the_keda_refusal_rate_agrees_with_the_client_within_ten_percent(figures):
    """sum(rate(loopsafe_refused_total[1m])) matches the client's refusals in the same minute."""
    for comparison in figures["rate_comparisons"]:
        client = comparison["client_per_s"]
        assert client > 1, comparison
        assert abs(comparison["prometheus_per_s"] - client) <= 0.10 * client, comparison


def test_the_refusal_alert_fires_during_the_storm_and_resolves_after(figures):
    """LoopsafeRefusalsSustained goes firing while the storm runs and inactive after it."""
    timeline = figures["alert_timeline_s"]
    fired = [t for t, state in timeline if state == "firing"]
    assert fired, timeline
    assert 0 < fired[0] < figures["storm_seconds"], timeline
    resolved = [t for t, state in timeline if state == "inactive" and t > fired[0]]
    assert resolved, timeline
    assert resolved[0] > figures["storm_seconds"], timeline


def test_every_shipped_query_evaluates(figures):
    """Each alert expression and KEDA query evaluates; the KEDA queries return a value."""
    evaluated = figures["evaluated_at_storm_end"]
    assert len(evaluated) == 7
    assert evaluated["keda-0"], evaluated
    assert evaluated["keda-1"], evaluated
    assert evaluated["LoopsafeRefusalsSustained"], evaluated
