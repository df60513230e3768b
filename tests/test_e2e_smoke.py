"""Smoke run of the end-to-end benchmark: a real uvicorn + Django server, cheap hashes.

Pins down that ``benchmarks/e2e/run.py --quick`` seeds, serves, loads and
stops, and that its JSON holds the documented figures. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "e2e" / "run.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("django") is None or importlib.util.find_spec("uvicorn") is None,
        reason="needs Django and uvicorn",
    ),
]


def loopsafe_django_ready() -> bool:
    """Whether loopsafe's Django integration is installed here."""
    try:
        return importlib.util.find_spec("loopsafe.django.backends") is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("stock", id="stock-django"),
        pytest.param(
            "loopsafe",
            id="loopsafe-backend",
            marks=pytest.mark.skipif(
                not loopsafe_django_ready(), reason="loopsafe.django is not there yet"
            ),
        ),
    ],
)
def test_e2e_quick_run_reports_health_and_goodput(tmp_path, mode):
    """run.py --quick answers every burst login and reports /health latency and storm goodput."""
    out = tmp_path / "e2e.json"
    done = subprocess.run(
        [
            sys.executable,
            str(RUN),
            "--quick",
            "--modes",
            mode,
            "--hashes",
            "fresh",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["schema"] == 1
    assert document["kind"] == "e2e"
    (case,) = document["results"]
    assert case["mode"] == mode
    assert {"django", "python", "cpu_s_per_login", "capacity_per_s"} <= set(case)
    burst = case["burst"]
    assert burst["ok"] == burst["logins"]
    assert burst["health_ms"]["count"] > 0
    assert {"p50", "p99", "max"} <= set(burst["health_ms"])
    storm = case["storm"]
    assert storm["ok"] + storm["rejected"] + storm["timed_out"] <= storm["offered"]
    assert {"goodput", "health_ms", "login_ms"} <= set(storm)
