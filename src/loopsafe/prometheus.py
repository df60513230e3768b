"""Prometheus metrics: the pool's statistics, a service-time histogram and the loop's lag.

`LoopsafeCollector` is a ``prometheus_client`` custom collector. At each scrape
it reads `HashPool.statistics()` (a consistent snapshot taken under the pool's
lock) and, when given a running `LoopLagMonitor`, its recent lag; a pool
listener (`HashPool.add_listener`) feeds the service-time histogram as calls
end. Every series is named ``loopsafe_*``; the only label is ``pool``, a name
the developer chose, so no user data (and never a password) reaches a label
(the container gauges below carry ``source`` instead; ``loopsafe_refused_total``
adds ``reason``, one of four fixed words). Client keys (addresses) are never
exported: only how many are active.

=================================  =========  ==========================================
metric                             type       meaning
=================================  =========  ==========================================
``loopsafe_max_workers``           gauge      calls that may run at once
``loopsafe_threads``               gauge      worker threads alive
``loopsafe_running``               gauge      calls running
``loopsafe_queued``                gauge      calls waiting for a worker
``loopsafe_estimated_wait_seconds``  gauge    queue wait a call arriving now would have
``loopsafe_active_keys``           gauge      client keys with a call queued or running
``loopsafe_admitted_total``        counter    calls accepted
``loopsafe_completed_total``       counter    calls that ran and were answered
``loopsafe_failed_total``          counter    of those, calls whose callable raised
``loopsafe_rejected_total``        counter    calls refused with `Overloaded`
``loopsafe_cancelled_total``       counter    calls whose caller was cancelled first
``loopsafe_expired_total``         counter    calls whose caller's deadline passed first
``loopsafe_abandoned_total``       counter    calls that ran for a caller already gone
``loopsafe_shed_total``            counter    queued calls pushed out for a fairer claim
``loopsafe_refused_total``         counter    refusals by ``reason``: pending, queue-wait,
                                              fair-share, priority (door and shed)
``loopsafe_service_seconds``       histogram  seconds a call kept a worker busy
``loopsafe_loop_lag_p50_seconds``  gauge      median loop lag, recent window
``loopsafe_loop_lag_p99_seconds``  gauge      99th percentile loop lag, recent window
``loopsafe_loop_lag_max_seconds``  gauge      worst loop lag, recent window
``loopsafe_usable_cpus``           gauge      CPUs a default-sized pool uses (cgroup-aware)
``loopsafe_cpu_limit_cpus``        gauge      the container's CPU quota in CPUs, if any
``loopsafe_memory_limit_bytes``    gauge      the container's memory limit, if any
``loopsafe_kdf_backend_info``      gauge      1 per KDF (``kdf``: pbkdf2, scrypt) with the
                                              ``backend`` computing it (hashlib, cryptography)
=================================  =========  ==========================================

``loopsafe_kdf_backend_info`` appears once the process has chosen (at its
first PBKDF2 or scrypt hash: a scrape never measures); its labels take two
values each.

The container gauges describe the process, not a pool: their one label, ``source``,
says how the limits were found (``cgroup_v2``, ``cgroup_v1``, ``none`` or
``disabled``), never the cgroup's path, so it has at most four values. The
limit gauges are absent when there is no limit.

Exposing them: `register` adds a collector to a registry; `starlette_route`
and `django_view` serve a registry (each imports its framework only when
called).
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import choose_encoder
    from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry
except ImportError as exc:  # pragma: no cover - exercised by a test that hides prometheus_client
    raise ImportError(
        "loopsafe.prometheus needs prometheus_client: pip install 'loopsafe[prometheus]'"
    ) from exc

from loopsafe._default import default_pool
from loopsafe._limits import container_limits
from loopsafe.hashers._kdf import chosen_backends

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from django.http import HttpRequest, HttpResponse
    from starlette.requests import Request
    from starlette.routing import Route

    from loopsafe._lag import LoopLagMonitor
    from loopsafe._limits import ContainerLimits
    from loopsafe._pool import HashPool

__all__ = [
    "DEFAULT_BUCKETS",
    "LoopsafeCollector",
    "django_view",
    "register",
    "starlette_route",
]

#: Service-time buckets, in seconds: from a cheap test hash to a slow Argon2.
DEFAULT_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

_GAUGES: Final = (
    ("max_workers", "max_workers", "Calls that may run at once."),
    ("threads", "threads", "Worker threads alive."),
    ("running", "running", "Calls running now."),
    ("queued", "queued", "Calls admitted and waiting for a worker."),
    ("estimated_wait", "estimated_wait_seconds", "Seconds a call arriving now would wait."),
    ("active_keys", "active_keys", "Client keys with a call queued or running."),
    (
        "host_held",
        "host_slots_held",
        "Slots held on the host by every process with the key (no host budget: running).",
    ),
    (
        "memory_in_use",
        "memory_in_use_bytes",
        "Bytes of memory declared by the hashes running (host-wide with a host budget).",
    ),
)
_COUNTERS: Final = (
    ("admitted", "Calls accepted."),
    ("completed", "Calls that ran and whose caller was answered (result or exception)."),
    ("failed", "Completed calls whose callable raised."),
    ("rejected", "Calls refused at admission (Overloaded)."),
    ("cancelled", "Calls whose caller was cancelled, or the pool closed, first."),
    ("expired", "Calls whose caller's deadline passed first."),
    ("abandoned", "Calls that ran to the end for a caller that had already gone."),
    ("shed", "Queued calls pushed out for a client below its fair share or a higher priority."),
)
_LAG: Final = (
    ("p50", "Median event-loop lag over the monitor's recent window, in seconds."),
    ("p99", "99th percentile event-loop lag over the monitor's recent window, in seconds."),
    ("max", "Worst event-loop lag over the monitor's recent window, in seconds."),
)
#: Listener events whose seconds are a service time (the call ran).
_RAN: Final = frozenset({"completed", "failed", "abandoned"})


class _Histogram:
    """Cumulative bucket counts, fed from worker threads."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = 0
        out = []
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == math.inf else repr(float(bound)), float(cumulative)))
        return out, total


@dataclass
class _Tracked:
    """One labelled pool: fixed, or None for the default pool (looked up at each scrape)."""

    fixed: HashPool | None
    histogram: _Histogram
    attached: HashPool | None = None
    detach: Callable[[], None] | None = None
    #: Counters of pools this entry followed before (the default pool was replaced),
    #: so that the exported counters never go down.
    carried: dict[str, int] = field(default_factory=dict)


class LoopsafeCollector(Collector):
    """A prometheus_client collector for loopsafe pools and the loop's lag.

    When the default pool is replaced, its counters carry on from the old
    pool's (they never go down); the histogram's listener moves to the new
    pool at the next scrape, so calls that end between the replacement and
    that scrape are counted but not in the histogram.

    Args:
        pools: Label value -> pool. None as a pool means loopsafe's default
            pool, looked up at each scrape so `loopsafe.configure` (and the
            Starlette lifespan) take effect. Defaults to ``{"default": None}``.
        lag: A running `LoopLagMonitor` (``keep_all=False`` for a server) whose
            recent window is exported; None exports no lag.
        buckets: Upper bounds of the service-time histogram, in seconds.

    Raises:
        ValueError: If a pool name is empty, or ``buckets`` are not increasing.
    """

    def __init__(
        self,
        pools: Mapping[str, HashPool | None] | None = None,
        *,
        lag: LoopLagMonitor | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        """Attach a listener to each pool to feed the histogram."""
        if pools is None:
            pools = {"default": None}
        if not isinstance(pools, Mapping):
            raise TypeError("pools must map a label value to a HashPool (or None)")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)) or bounds[0] <= 0:
            raise ValueError("buckets must be positive and strictly increasing")
        self._lock = threading.Lock()
        self._tracked: dict[str, _Tracked] = {}
        for name, pool in pools.items():
            if not name:
                raise ValueError("a pool's label value must be a non-empty string")
            self._tracked[name] = _Tracked(pool, _Histogram(bounds))
        self.lag = lag
        for tracked in self._tracked.values():
            self._follow(tracked)

    def close(self) -> None:
        """Remove this collector's listeners from the pools (unregister it first)."""
        with self._lock:
            for tracked in self._tracked.values():
                if tracked.detach is not None:
                    tracked.detach()
                tracked.attached = tracked.detach = None

    def _follow(self, tracked: _Tracked) -> HashPool:
        """Return the entry's pool now, moving the listener if the default pool changed."""
        pool = tracked.fixed if tracked.fixed is not None else default_pool()
        with self._lock:
            if pool is tracked.attached:
                return pool
            if tracked.attached is not None:
                old = tracked.attached.statistics()
                for key, _ in _COUNTERS:
                    tracked.carried[key] = tracked.carried.get(key, 0) + getattr(old, key)
                for reason, count in old.refusals.items():
                    carried = f"refused:{reason}"
                    tracked.carried[carried] = tracked.carried.get(carried, 0) + count
            if tracked.detach is not None:
                tracked.detach()
            histogram = tracked.histogram

            def listen(event: str, seconds: float) -> None:
                if event in _RAN:
                    histogram.observe(seconds)

            tracked.detach = pool.add_listener(listen)
            tracked.attached = pool
        return pool

    def describe(self) -> Iterator[Metric]:
        """Name every metric without reading any pool (for the registry's duplicate check)."""
        yield from _Families(lag=self.lag is not None).all()

    def collect(self) -> Iterator[Metric]:
        """Read every pool's statistics and the lag monitor; one sample per pool and metric."""
        families = _Families(lag=self.lag is not None)
        for name, tracked in self._tracked.items():
            stats = self._follow(tracked).statistics()
            for attribute, gauge in families.gauges.items():
                gauge.add_metric([name], float(getattr(stats, attribute)))
            for key, counter in families.counters.items():
                counter.add_metric([name], float(getattr(stats, key) + tracked.carried.get(key, 0)))
            for reason, count in stats.refusals.items():
                carried = tracked.carried.get(f"refused:{reason}", 0)
                families.refused.add_metric([name, reason], float(count + carried))
            buckets, total = tracked.histogram.buckets()
            families.service.add_metric([name], buckets, total)
        if self.lag is not None:
            recent = self.lag.recent()
            for stat, gauge in families.lag.items():
                gauge.add_metric([], getattr(recent, stat))
        families.add_limits(container_limits())  # cached: no file is read here
        for kdf, choice in chosen_backends().items():
            families.kdf_backend.add_metric([kdf, choice.backend], 1.0)
        yield from families.all()


class _Families:
    """The metric families of one scrape, empty until samples are added."""

    def __init__(self, *, lag: bool) -> None:
        labels = ["pool"]
        self.gauges = {
            attribute: GaugeMetricFamily(f"loopsafe_{metric}", doc, labels=labels)
            for attribute, metric, doc in _GAUGES
        }
        self.counters = {
            key: CounterMetricFamily(f"loopsafe_{key}", doc, labels=labels)
            for key, doc in _COUNTERS
        }
        self.refused = CounterMetricFamily(
            "loopsafe_refused",
            "Calls refused with Overloaded (at the door or shed from the queue), by reason.",
            labels=["pool", "reason"],
        )
        self.service = HistogramMetricFamily(
            "loopsafe_service_seconds",
            "Seconds a call kept a worker busy (calls that ran, answered or abandoned).",
            labels=labels,
        )
        self.lag = (
            {
                stat: GaugeMetricFamily(f"loopsafe_loop_lag_{stat}_seconds", doc)
                for stat, doc in _LAG
            }
            if lag
            else {}
        )

        self.usable_cpus = GaugeMetricFamily(
            "loopsafe_usable_cpus",
            "CPUs a default-sized pool uses: the affinity count, lowered to the cgroup CPU limit.",
            labels=["source"],
        )
        self.cpu_limit = GaugeMetricFamily(
            "loopsafe_cpu_limit_cpus",
            "The container's CPU quota in CPUs (quota / period), tightest cgroup level.",
            labels=["source"],
        )
        self.memory_limit = GaugeMetricFamily(
            "loopsafe_memory_limit_bytes",
            "The container's memory limit in bytes, tightest cgroup level.",
            labels=["source"],
        )

        self.kdf_backend = GaugeMetricFamily(
            "loopsafe_kdf_backend_info",
            "1 for the implementation (hashlib or cryptography) computing each KDF here.",
            labels=["kdf", "backend"],
        )

    def add_limits(self, limits: ContainerLimits) -> None:
        self.usable_cpus.add_metric([limits.source], float(limits.cpus))
        if limits.cpu_quota is not None:
            self.cpu_limit.add_metric([limits.source], limits.cpu_quota)
        if limits.memory_limit is not None:
            self.memory_limit.add_metric([limits.source], float(limits.memory_limit))

    def all(self) -> list[Metric]:
        return [
            *self.gauges.values(),
            *self.counters.values(),
            self.refused,
            self.service,
            *self.lag.values(),
            self.usable_cpus,
            self.cpu_limit,
            self.memory_limit,
            self.kdf_backend,
        ]


def register(
    pools: Mapping[str, HashPool | None] | None = None,
    *,
    lag: LoopLagMonitor | None = None,
    registry: CollectorRegistry | None = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> LoopsafeCollector:
    """Create a `LoopsafeCollector` and register it (default: prometheus_client's ``REGISTRY``).

    Returns:
        The collector: ``registry.unregister(collector); collector.close()`` undoes it.
    """
    collector = LoopsafeCollector(pools, lag=lag, buckets=buckets)
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def _render(registry: CollectorRegistry | None, accept: str | None) -> tuple[bytes, str]:
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY if registry is None else registry), content_type


def starlette_route(
    path: str = "/metrics",
    *,
    registry: CollectorRegistry | None = None,
    name: str = "metrics",
) -> Route:
    """Return a Starlette ``Route`` (GET) serving ``registry`` in the format the scraper accepts.

    Add it with ``app.router.routes.append(...)`` or ``Starlette(routes=[...])``.
    Collecting is a few lock-protected reads, so it runs on the loop.

    Raises:
        ImportError: If Starlette is missing.
    """
    try:
        from starlette.responses import Response
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - starlette is installed in the test env
        raise ImportError(
            "starlette_route needs Starlette: pip install 'loopsafe[starlette]'"
        ) from exc

    async def metrics(request: Request) -> Response:
        body, content_type = _render(registry, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    return Route(path, metrics, methods=["GET"], name=name)


def django_view(
    registry: CollectorRegistry | None = None,
) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """Return an async Django view serving ``registry`` in the format the scraper accepts.

    Route it with ``path("metrics", loopsafe.prometheus.django_view())``. It
    is async so that under ASGI it answers on the loop instead of queueing for
    Django's thread for synchronous views; under WSGI Django runs it too.

    Raises:
        ImportError: If Django is missing.
    """
    try:
        from django.http import HttpResponse, HttpResponseNotAllowed
    except ImportError as exc:  # pragma: no cover - Django is installed in the test env
        raise ImportError("django_view needs Django: pip install 'loopsafe[django]'") from exc

    async def metrics(request: HttpRequest) -> HttpResponse:
        if request.method not in {"GET", "HEAD"}:
            return HttpResponseNotAllowed(["GET", "HEAD"])
        body, content_type = _render(registry, request.headers.get("Accept"))
        return HttpResponse(body, content_type=content_type)

    return metrics
