"""loopsafe.opentelemetry: the pool's figures as OpenTelemetry instruments, read by the SDK."""

from __future__ import annotations

import importlib
import sys
import tempfile
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import loopsafe
from _support import end_every_way, wait_until
from loopsafe import HashPool, LoopLagMonitor, PasswordHash, profiles
from loopsafe.opentelemetry import METER_NAME, instrument

pytestmark = pytest.mark.anyio

SECRET = "correct-horse-battery-staple-42"


def setup():
    """A private provider whose in-memory reader collects on demand."""
    reader = InMemoryMetricReader()
    return reader, MeterProvider(metric_readers=[reader])


def read(reader) -> dict[str, dict[tuple[tuple[str, object], ...], object]]:
    """{instrument: {sorted attributes: value, or the histogram point}} from one collection."""
    out: dict[str, dict[tuple[tuple[str, object], ...], object]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            assert scope.scope.name == METER_NAME
            for metric in scope.metrics:
                points = out.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    key = tuple(sorted(point.attributes.items()))
                    points[key] = getattr(point, "value", point)
    return out


def one(figures, name: str, pool: str = "p", **attributes: str) -> object:
    """One pool's value of one instrument (attributes without the pool's name)."""
    key = tuple(sorted({"loopsafe.pool.name": pool, **attributes}.items()))
    return figures[name][key]


class TestInstruments:
    """Every figure of the pool is reported under its OpenTelemetry-style name."""

    async def test_figures_equal_the_pools_statistics(self):
        """Workers, pending, outcomes, admissions and refusals equal statistics() at each end."""
        reader, provider = setup()
        pool = HashPool(1, max_pending=1, max_queue_wait=None)
        instruments = instrument({"p": pool}, meter_provider=provider)
        during = await end_every_way(pool, lambda: read(reader))
        stats = pool.statistics()
        after = read(reader)
        assert one(during, "loopsafe.pool.worker.count", **{"loopsafe.worker.state": "used"}) == 1
        assert one(during, "loopsafe.pool.pending") == 1
        assert one(after, "loopsafe.pool.worker.max") == stats.max_workers == 1
        assert one(after, "loopsafe.pool.worker.count", **{"loopsafe.worker.state": "used"}) == 0
        outcome = "loopsafe.call.outcome"
        assert one(after, "loopsafe.pool.calls", **{outcome: "ok"}) == stats.completed - 1
        assert one(after, "loopsafe.pool.calls", **{outcome: "error"}) == stats.failed == 1
        assert one(after, "loopsafe.pool.calls", **{outcome: "expired"}) == stats.expired == 1
        assert one(after, "loopsafe.pool.calls", **{outcome: "cancelled"}) == stats.cancelled == 1
        assert one(after, "loopsafe.pool.timeouts") == stats.expired
        result = "loopsafe.admission.result"
        assert one(after, "loopsafe.admission.requests", **{result: "acquired"}) == stats.admitted
        assert one(after, "loopsafe.admission.requests", **{result: "rejected"}) == 1
        reason = "loopsafe.refusal.reason"
        assert one(after, "loopsafe.pool.refusals", **{reason: "pending"}) == 1
        assert one(after, "loopsafe.pool.estimated_wait") == stats.estimated_wait
        assert "loopsafe.host.slots.limit" not in after  # no host budget: no limit reported
        instruments.close()
        pool.close()

    async def test_use_time_histogram(self):
        """Calls that ran land in loopsafe.pool.use_time, in seconds, with the pool's name."""
        reader, provider = setup()
        pool = HashPool(2)
        instrument({"p": pool}, meter_provider=provider)
        await pool.run(int)
        await pool.run(time.sleep, 0.05)
        point = one(read(reader), "loopsafe.pool.use_time")
        assert point.count == 2
        assert point.sum >= 0.05
        assert point.explicit_bounds[0] == 0.001
        pool.close()

    async def test_default_pool_is_followed_and_counters_never_drop(self):
        """After configure() replaces the default pool, the counters carry on from the old one."""
        loopsafe.configure()
        reader, provider = setup()
        instrument(meter_provider=provider)
        await loopsafe.default_pool().run(int)
        outcome = {"loopsafe.call.outcome": "ok"}
        before = one(read(reader), "loopsafe.pool.calls", "default", **outcome)
        loopsafe.configure(1)
        await loopsafe.default_pool().run(int)
        after = read(reader)
        assert one(after, "loopsafe.pool.calls", "default", **outcome) == before + 1
        assert one(after, "loopsafe.pool.worker.max", "default") == 1
        loopsafe.configure()

    async def test_host_budget_slots(self, monkeypatch):
        """A pool with a host budget reports the host's slots and their limit."""
        reader, provider = setup()
        with tempfile.TemporaryDirectory() as directory:
            monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", directory)
            pool = HashPool(1, host_limit=3, host_key="otel-test")
            instrument({"p": pool}, meter_provider=provider)
            figures = read(reader)
            pool.close()
        assert one(figures, "loopsafe.host.slots.limit") == 3
        assert one(figures, "loopsafe.host.slots.used") == 0

    async def test_loop_lag_gauges(self):
        """With a running monitor, the loop's delay p50 <= p99 <= max is reported, unlabelled."""
        reader, provider = setup()
        async with LoopLagMonitor(keep_all=False) as lag:
            instrument({"p": HashPool(1)}, lag=lag, meter_provider=provider)
            await wait_until(lambda: lag.count >= 5)
            figures = read(reader)
        worst = figures["loopsafe.eventloop.delay.max"][()]
        assert 0 <= figures["loopsafe.eventloop.delay.p50"][()] <= worst
        assert figures["loopsafe.eventloop.delay.p99"][()] <= worst

    async def test_close_stops_reporting(self):
        """After close(), no observation is reported and no call reaches the histogram."""
        reader, provider = setup()
        pool = HashPool(1)
        instruments = instrument({"p": pool}, meter_provider=provider)
        instruments.close()
        await pool.run(int)
        figures = read(reader)
        assert "loopsafe.pool.calls" not in figures
        assert "loopsafe.pool.use_time" not in figures
        pool.close()


class TestNoUserData:
    """Attributes carry the pool's name and fixed words only, never a password or a client."""

    async def test_no_password_or_client_in_any_attribute(self):
        """After hashing for a client, no attribute or value holds the password or the address."""
        reader, provider = setup()
        pool = HashPool(1)
        instrument({"auth": pool}, meter_provider=provider)
        ph = PasswordHash(profiles.CHEAP.hashers(), pool=pool).for_client("203.0.113.77")
        encoded = await ph.ahash(SECRET)
        assert not await ph.averify("wrong", encoded)
        allowed = {
            "loopsafe.pool.name",
            "loopsafe.worker.state",
            "loopsafe.call.outcome",
            "loopsafe.admission.result",
            "loopsafe.refusal.reason",
        }
        for points in read(reader).values():
            for attributes in points:
                assert {key for key, _ in attributes} <= allowed
                text = repr(attributes)
                assert SECRET not in text
                assert "203.0.113.77" not in text
        pool.close()


class TestArguments:
    """Bad arguments fail at once; a missing API names the extra."""

    def test_pools_must_be_a_mapping(self):
        """A bare pool is not a mapping of names."""
        with pytest.raises(TypeError, match="map a name"):
            instrument(HashPool(1))  # type: ignore[arg-type]

    def test_empty_pool_name(self):
        """A pool's name cannot be empty."""
        with pytest.raises(ValueError, match="non-empty"):
            instrument({"": HashPool(1)})

    def test_missing_api_names_the_extra(self, monkeypatch):
        """Importing loopsafe.opentelemetry without opentelemetry-api names the extra."""
        for name in list(sys.modules):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "loopsafe.opentelemetry", raising=False)
        with pytest.raises(ImportError, match=r"pip install 'loopsafe\[opentelemetry\]'"):
            importlib.import_module("loopsafe.opentelemetry")


def test_the_documented_snippet_runs():
    """The snippet in docs/integrations.md runs as written (on the global, no-op provider)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "integrations.md").read_text()
    section = text.split("## OpenTelemetry", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(snippet, namespace)  # noqa: S102 - our own documentation
    namespace["instruments"].close()  # type: ignore[attr-defined]
