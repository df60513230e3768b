"""The overload soak in a bounded form: ~12 s at 4x capacity, every admitted call answered.

The same code as ``benchmarks/soak.py`` (imported from there), with a PBKDF2
sized to ~25 ms a hash so capacity is high enough for thousands of calls in
a few seconds. The benchmark's own checks are the assertions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from _support import load_benchmark, report

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _soak_module():
    return load_benchmark("soak")


@pytest.mark.slow
def test_overload_soak_answers_every_admitted_call():
    """4x capacity, fast/slow/cancelling clients: nothing lost, Overloaded only past the budget.

    Memory, threads and tasks come back down, and the pool's statistics add up.
    """
    pytest.importorskip("psutil")
    soak = _soak_module()
    config = soak.SoakConfig(
        soak.pbkdf2_sized(0.025),
        duration=12.0,
        load=4.0,
        fast_timeout=0.25,
        slow_timeout=5.0,
        cancel_after=(0.0, 0.2),
        max_queue_wait=0.25,
        max_pending=256,
    )
    result = asyncio.run(soak.run_soak(config))
    report(soak.format_result(result, config))
    assert not result.failures, result.failures
    assert result.issued > 500
    assert result.outcomes.get("overloaded", 0) > 0, "4x capacity must meet admission control"
    assert result.outcomes.get("timeout", 0) > 0, "fast clients at the budget's edge time out"
    assert result.outcomes.get("cancelled", 0) > 0
    assert result.pool["admitted"] == (
        result.pool["completed"] + result.pool["cancelled"] + result.pool["expired"]
    )
    assert result.rss_peak_mib - result.rss_baseline_mib < 100
    assert result.late_races <= max(5, result.issued // 100)
