"""loopsafe.prometheus: pool statistics, service-time histogram and loop lag, pool label only."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import loopsafe
from _support import Gate, end_every_way, run_child, wait_until
from loopsafe import HashPool, LoopLagMonitor, PasswordHash, profiles
from loopsafe._statistics import REFUSAL_REASONS
from loopsafe.hashers import _kdf
from loopsafe.prometheus import LoopsafeCollector, register, starlette_route

pytestmark = pytest.mark.anyio

SECRET = "correct-horse-battery-staple-42"


def scrape(registry: CollectorRegistry) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Parse the text exposition into {sample name: {sorted labels: value}}."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples, name: str, pool: str = "default") -> float:
    """One pool's value of one sample name."""
    return samples[name][(("pool", pool),)]


class TestCollector:
    """Every statistic is exported under its loopsafe_ name with the pool label."""

    async def test_statistics_are_exported(self):
        """Gauges and counters equal the pool's statistics after every kind of ending."""
        pool = HashPool(1, max_pending=1, max_queue_wait=None, name="exported")
        registry = CollectorRegistry()
        register({"auth": pool}, registry=registry)
        during = await end_every_way(pool, lambda: scrape(registry))
        stats = pool.statistics()
        after = scrape(registry)
        assert value(during, "loopsafe_running", "auth") == 1
        assert value(during, "loopsafe_queued", "auth") == 1
        for gauge in ("max_workers", "threads", "running", "queued"):
            assert value(after, f"loopsafe_{gauge}", "auth") == getattr(stats, gauge), gauge
        assert value(after, "loopsafe_estimated_wait_seconds", "auth") == stats.estimated_wait
        for counter in ("admitted", "completed", "failed", "rejected", "cancelled", "expired"):
            exported = value(after, f"loopsafe_{counter}_total", "auth")
            assert exported == getattr(stats, counter) >= 1, counter
        assert value(after, "loopsafe_abandoned_total", "auth") == stats.abandoned == 0
        pool.close()

    async def test_abandoned_calls_are_counted(self):
        """A call that ran for a caller who left counts as abandoned, and in the histogram."""
        pool = HashPool(1)
        registry = CollectorRegistry()
        register({"p": pool}, registry=registry)
        gate = Gate()
        with anyio.move_on_after(0.05):
            await pool.run(gate)
        gate.release.set()
        await wait_until(lambda: pool.statistics().abandoned == 1)
        samples = scrape(registry)
        assert value(samples, "loopsafe_abandoned_total", "p") == 1
        assert value(samples, "loopsafe_service_seconds_count", "p") == 1
        pool.close()

    async def test_service_time_histogram(self):
        """Calls land in the buckets their service time belongs to; sum and count add up."""
        pool = HashPool(2)
        registry = CollectorRegistry()
        register({"p": pool}, registry=registry, buckets=(0.01, 0.2))
        await pool.run(int)  # microseconds: first bucket
        await pool.run(time.sleep, 0.05)  # second bucket (sleeps at least 50 ms)
        await wait_until(
            lambda: value(scrape(registry), "loopsafe_service_seconds_count", "p") == 2
        )
        samples = scrape(registry)["loopsafe_service_seconds_bucket"]
        assert samples[(("le", "0.01"), ("pool", "p"))] >= 1
        assert samples[(("le", "+Inf"), ("pool", "p"))] == 2
        assert samples[(("le", "0.01"), ("pool", "p"))] < 2
        total = value(scrape(registry), "loopsafe_service_seconds_sum", "p")
        assert total >= 0.05
        pool.close()

    async def test_default_pool_is_followed_and_counters_never_drop(self):
        """After configure() replaces the default pool, counters carry on from the old one."""
        # A fresh default pool: calls other tests left running on the shared one
        # would otherwise finish in the middle of this test and be counted.
        loopsafe.configure()
        registry = CollectorRegistry()
        register(registry=registry)
        await loopsafe.default_pool().run(int)
        await loopsafe.default_pool().run(int)
        before = value(scrape(registry), "loopsafe_completed_total")
        assert before >= 2
        loopsafe.configure(1)
        scrape(registry)  # a scrape moves the histogram's listener to the new default pool
        await loopsafe.default_pool().run(int)
        after = scrape(registry)
        assert value(after, "loopsafe_completed_total") == before + 1
        assert value(after, "loopsafe_max_workers") == 1
        # The histogram counts from registration on: two calls, then one on the new pool.
        await wait_until(lambda: value(scrape(registry), "loopsafe_service_seconds_count") == 3)
        loopsafe.configure()

    async def test_loop_lag_gauges(self):
        """With a running monitor, p50/p99/max of its recent window are exported, unlabelled."""
        registry = CollectorRegistry()
        async with LoopLagMonitor(keep_all=False) as lag:
            register({"p": HashPool(1)}, lag=lag, registry=registry)
            await wait_until(lambda: lag.count >= 5)
            samples = scrape(registry)
        recent_max = samples["loopsafe_loop_lag_max_seconds"][()]
        assert 0 <= samples["loopsafe_loop_lag_p50_seconds"][()] <= recent_max
        assert samples["loopsafe_loop_lag_p99_seconds"][()] <= recent_max

    async def test_no_lag_gauges_without_a_monitor(self):
        """Without a monitor no lag series appear (no fake zeros)."""
        registry = CollectorRegistry()
        register({"p": HashPool(1)}, registry=registry)
        assert not any("loop_lag" in name for name in scrape(registry))

    async def test_close_detaches_the_listener(self):
        """After close(), the pool's calls no longer reach the collector's histogram."""
        pool = HashPool(1)
        registry = CollectorRegistry()
        collector = register({"p": pool}, registry=registry)
        await pool.run(int)
        await wait_until(lambda: value(scrape(registry), "loopsafe_service_seconds_count", "p"))
        registry.unregister(collector)
        collector.close()
        await pool.run(int)
        await anyio.sleep(0.05)
        buckets, _ = collector._histograms["p"].buckets()
        assert buckets[-1] == ("+Inf", 1.0)
        pool.close()


class TestKDFBackend:
    """The KDF backend in use is exported as an info-style gauge, once chosen."""

    async def test_backend_info_after_the_first_hash(self):
        """After a PBKDF2 hash, loopsafe_kdf_backend_info says which backend computed it."""
        pool = HashPool(1, name="kdf")
        registry = CollectorRegistry()
        register({"kdf": pool}, registry=registry)
        await PasswordHash(profiles.CHEAP.hashers(), pool=pool).ahash(SECRET)
        samples = scrape(registry)["loopsafe_kdf_backend_info"]
        chosen = _kdf.backend("pbkdf2").backend
        assert samples[(("backend", chosen), ("kdf", "pbkdf2"))] == 1
        assert all(value == 1 for value in samples.values())
        pool.close()


class TestNoUserData:
    """Labels and values never carry user data: the pool label is the only label."""

    async def test_no_password_and_only_the_pool_label(self):
        """After hashing a known password, it appears nowhere in the exposition."""
        pool = HashPool(1, name="auth")
        registry = CollectorRegistry()
        register({"auth": pool}, registry=registry)
        ph = PasswordHash(profiles.CHEAP.hashers(), pool=pool).for_client("203.0.113.77")
        encoded = await ph.ahash(SECRET)
        assert not await ph.averify("wrong", encoded)
        text = generate_latest(registry).decode()
        assert SECRET not in text
        assert encoded not in text
        assert "203.0.113.77" not in text  # client keys are never exported
        for family in text_string_to_metric_families(text):
            assert family.name.startswith("loopsafe_")
            for sample in family.samples:
                assert set(sample.labels) <= {"pool", "le", "source", "reason", "kdf", "backend"}
                assert sample.labels.get("reason", "pending") in REFUSAL_REASONS
                assert sample.labels.get("kdf", "pbkdf2") in _kdf.KDFS
                assert sample.labels.get("backend", "hashlib") in _kdf.BACKENDS
        pool.close()


class TestArguments:
    """Bad configuration fails at construction, with ValueError or TypeError."""

    @pytest.mark.parametrize(
        "buckets",
        [
            pytest.param((), id="empty"),
            pytest.param((0.5, 0.1), id="decreasing"),
            pytest.param((0.1, 0.1), id="repeated"),
            pytest.param((0.0, 1.0), id="zero"),
        ],
    )
    def test_bad_buckets(self, buckets):
        """Buckets must be positive and strictly increasing."""
        with pytest.raises(ValueError, match="buckets"):
            LoopsafeCollector({"p": HashPool(1)}, buckets=buckets)

    def test_empty_pool_name(self):
        """A pool's label value cannot be empty."""
        with pytest.raises(ValueError, match="non-empty"):
            LoopsafeCollector({"": HashPool(1)})

    def test_pools_must_be_a_mapping(self):
        """A bare pool is not a mapping of label values."""
        with pytest.raises(TypeError, match="map a label value"):
            LoopsafeCollector(HashPool(1))  # type: ignore[arg-type]

    def test_duplicate_registration_is_refused(self):
        """Two collectors in one registry would duplicate series: the registry refuses."""
        registry = CollectorRegistry()
        register({"a": HashPool(1)}, registry=registry)
        with pytest.raises(ValueError, match="Duplicated"):
            register({"b": HashPool(1)}, registry=registry)


class TestExposition:
    """The Starlette route and the Django view serve the registry."""

    async def test_starlette_route(self):
        """GET /metrics answers the text format; an OpenMetrics Accept gets OpenMetrics."""
        from starlette.applications import Starlette

        registry = CollectorRegistry()
        register({"p": HashPool(1)}, registry=registry)
        app = Starlette(routes=[starlette_route(registry=registry)])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            plain = await client.get("/metrics")
            openmetrics = await client.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
            post = await client.post("/metrics")
        assert plain.status_code == 200
        assert plain.headers["content-type"].startswith("text/plain")
        assert 'loopsafe_completed_total{pool="p"} 0.0' in plain.text
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
        assert post.status_code == 405

    def test_django_view(self):
        """The async Django view serves the registry (in a child: Django settings are global)."""
        script = textwrap.dedent(
            """
            import asyncio
            import django
            from django.conf import settings
            settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"])
            django.setup()
            from django.test import RequestFactory
            from prometheus_client import CollectorRegistry
            from loopsafe import HashPool
            from loopsafe.prometheus import django_view, register

            registry = CollectorRegistry()
            register({"p": HashPool(1)}, registry=registry)
            view = django_view(registry)
            get = asyncio.run(view(RequestFactory().get("/metrics")))
            post = asyncio.run(view(RequestFactory().post("/metrics")))
            print(get.status_code, get["Content-Type"])
            print(post.status_code)
            print(get.content.decode())
            """
        )
        result = run_child(script, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith("200 text/plain")
        assert lines[1] == "405"
        assert 'loopsafe_queued{pool="p"} 0.0' in result.stdout


def test_missing_prometheus_client_names_the_extra(monkeypatch):
    """Importing loopsafe.prometheus without prometheus_client says which extra to install."""
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "loopsafe.prometheus", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'loopsafe\[prometheus\]'"):
        importlib.import_module("loopsafe.prometheus")
