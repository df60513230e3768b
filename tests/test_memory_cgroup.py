"""A memory-limited cgroup and an Argon2 burst, scaled down: loopsafe's defaults are never killed.

The same code as ``benchmarks/memory_cgroup.py`` (imported from there): a real
uvicorn server in a cgroup v1 memory group (192 MiB, swap off), real Argon2
at 32 MiB a hash, a burst of logins over 127.0.0.1 from this process. The
stock baseline is pwdlib on the loop's default executor with the 20 threads a
16-core node gives it; loopsafe runs with its defaults, so it reads the
group's limit and hashes within half of it. Needs Linux, cgroup v1 memory and
root; skipped with the reason elsewhere.
"""

from __future__ import annotations

import pytest

from _support import load_benchmark, report

LIMIT_MIB = 192
LOGINS = 16


@pytest.fixture(scope="module")
def bench():
    """The benchmark module, or a skip saying why no memory cgroup can be made here."""
    pytest.importorskip("argon2")
    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    module = load_benchmark("memory_cgroup")
    reason = module.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return module


@pytest.fixture(scope="module")
def encoded(bench) -> str:
    """Argon2id at 32 MiB: a sixth of the group's limit per hash."""
    return bench.make_encoded(1, 32 * 1024, 4)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_loopsafe_defaults_survive_a_burst_that_kills_the_stock_executor(bench, encoded):
    """Stock: OOM-killed or losing logins; loopsafe: 0 kills, 0 lost, peak under the limit."""
    pytest.importorskip("pwdlib")
    stock = bench.run_variant(
        "pwdlib", encoded=encoded, limit_mib=LIMIT_MIB, logins=LOGINS, cpu_count=16
    )
    ours = bench.run_variant("loopsafe", encoded=encoded, limit_mib=LIMIT_MIB, logins=LOGINS)
    for outcome in (stock, ours):
        report(bench._row(outcome))  # the benchmark's own table row
    # The burst is big enough to matter: the stock executor's 20 threads exceed the limit.
    assert stock.executor_threads == 20
    assert stock.oom_kills >= 1 or stock.lost + stock.wrongly_denied > 0, stock
    # loopsafe read the group's limit and kept within it.
    assert ours.limits_seen is not None
    assert "memory.limit_in_bytes 192 MiB -> 96 MiB for hashing" in ours.limits_seen
    assert ours.oom_kills == 0, ours
    assert ours.exit_status is None, ours  # alive until the benchmark stopped it
    assert (ours.lost, ours.wrongly_denied) == (0, 0), ours
    assert ours.served + ours.refused == LOGINS
    assert ours.served >= 2  # at least one per worker
    assert ours.refused_without_retry_after == 0
    assert ours.peak_mib < LIMIT_MIB
