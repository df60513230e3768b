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
import os
import threading
import time
import weakref
from collections.abc import Mapping
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

from loopsafe._host_figures import HostFigures, merge
from loopsafe._limits import container_limits
from loopsafe._observed import ObservedPool
from loopsafe._prometheus_multiprocess import MultiProcessValues
from loopsafe._statistics import REFUSAL_REASONS
from loopsafe.hashers._kdf import chosen_backends

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from django.http import HttpRequest, HttpResponse
    from starlette.requests import Request
    from starlette.routing import Route

    from loopsafe._host_figures import Figures
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
#: Gauges that add up over a server's processes (the others take the worst process's).
_SUMMED: Final = ("max_workers", "threads", "running", "queued", "active_keys")
#: Seconds between two readings of the lag monitor's window.
_LAG_REFRESH: Final = 0.5


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

    def counts(self) -> tuple[list[float], float]:
        """Each bucket's own count (the last is +Inf's) and the sum of the seconds."""
        with self._lock:
            return [float(count) for count in self._counts], self._sum

    def buckets(self) -> tuple[list[tuple[str, float]], float]:
        counts, total = self.counts()
        return _cumulative(self.bounds, counts), total


class LoopsafeCollector(Collector):
    """A prometheus_client collector for loopsafe pools and the loop's lag, host-wide.

    Under ``gunicorn -w N`` or ``uvicorn --workers N`` a scrape reaches one
    worker; whichever it is, the figures describe the host: counters and the
    histogram sum every worker's, live or exited; gauges sum (or, for the
    loop lag and the estimated wait, take the worst of) the live workers'.
    Each worker publishes its figures in a file of loopsafe's runtime
    directory (`loopsafe._host_figures`). When ``PROMETHEUS_MULTIPROC_DIR``
    is set, the figures go to prometheus_client's multi-process files
    instead, for its ``MultiProcessCollector`` to sum, and this collector
    yields nothing itself.

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
        host_wide: Sum the figures of the server's other processes (default);
            False exports this process's own.
        host_key: The key the server's processes share (default: one per
            server, see `loopsafe._host_figures.default_metrics_key`).

    Raises:
        ValueError: If a pool name is empty, or ``buckets`` are not increasing.
    """

    def __init__(
        self,
        pools: Mapping[str, HashPool | None] | None = None,
        *,
        lag: LoopLagMonitor | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        host_wide: bool = True,
        host_key: str | None = None,
    ) -> None:
        """Attach a listener to each pool to feed the histogram and the shared figures."""
        if pools is None:
            pools = {"default": None}
        if not isinstance(pools, Mapping):
            raise TypeError("pools must map a label value to a HashPool (or None)")
        bounds = tuple(float(b) for b in buckets)
        if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)) or bounds[0] <= 0:
            raise ValueError("buckets must be positive and strictly increasing")
        for name in pools:
            if not name:
                raise ValueError("a pool's label value must be a non-empty string")
        self.lag = lag
        self._lag_cache: tuple[float, dict[str, float]] = (-1.0, {})
        self._multiprocess = (
            MultiProcessValues(bounds, _multiprocess_docs(), _COUNTERS)
            if _multiprocess_directory()
            else None
        )
        sink = self._multiprocess.update if self._multiprocess is not None else None
        self._figures = (
            HostFigures(self._snapshot, host_key, sink=sink)
            if host_wide or sink is not None
            else None
        )
        self._histograms = {name: _Histogram(bounds) for name in pools}
        self._observed = {
            name: ObservedPool(pool, self._listener(name)) for name, pool in pools.items()
        }
        _collectors.add(self)

    def _listener(self, name: str) -> Callable[[str, float], None]:
        histogram = self._histograms[name]
        multiprocess = self._multiprocess

        def listen(event: str, seconds: float) -> None:
            if event in _RAN:
                histogram.observe(seconds)
                if multiprocess is not None:
                    multiprocess.observe(name, seconds)
            if self._figures is not None:
                self._figures.poke()

        return listen

    def close(self) -> None:
        """Remove this collector's listeners and its published figures (unregister it first)."""
        for observed in self._observed.values():
            observed.close()
        if self._figures is not None:
            self._figures.close()
        _collectors.discard(self)

    def _lag_figures(self) -> dict[str, float]:
        """The lag monitor's recent window, read at most twice a second (it sorts the window)."""
        if self.lag is None:
            return {}
        when, cached = self._lag_cache
        now = time.monotonic()
        if now - when >= _LAG_REFRESH:
            recent = self.lag.recent()
            cached = {f"lag_{stat}": getattr(recent, stat) for stat, _ in _LAG}
            self._lag_cache = (now, cached)
        return cached

    def _snapshot(self) -> Figures:
        """This process's figures (see `loopsafe._host_figures`)."""
        pools = {}
        for name, observed in self._observed.items():
            stats, counts = observed.read()
            summed = {key: float(getattr(stats, key)) for key in _SUMMED}
            worst = {"estimated_wait": stats.estimated_wait}
            host = {"host_held": float(stats.host_held), "memory_in_use": stats.memory_in_use}
            if stats.host_limit is None:
                summed.update(host)  # this process's own running calls and memory
            else:
                worst.update(host, host_limit=float(stats.host_limit))  # host-wide already
            buckets, total = self._histograms[name].counts()
            pools[name] = {"c": counts, "s": summed, "m": worst, "hist": [*buckets, total]}
        return {"pools": pools, "m": self._lag_figures()}

    def refresh(self) -> None:
        """Publish this process's figures now (the exposition helpers do it before a scrape)."""
        if self._figures is not None:
            self._figures.publish()

    def describe(self) -> Iterator[Metric]:
        """Name every metric without reading any pool (for the registry's duplicate check)."""
        if self._multiprocess is None:
            yield from _Families(lag=self.lag is not None).all()

    def collect(self) -> Iterator[Metric]:
        """Every pool's figures (host-wide unless ``host_wide=False``) and the lag, one scrape."""
        if self._multiprocess is not None:
            self.refresh()  # MultiProcessCollector reads them from prometheus_client's files
            return
        if self._figures is not None:
            figures = self._figures.host()
        else:
            figures = merge(self._snapshot(), [], {})
        families = _Families(lag=self.lag is not None)
        for name, pool in figures["pools"].items():
            values = {**pool["s"], **pool["m"]}
            for attribute, gauge in families.gauges.items():
                gauge.add_metric([name], values.get(attribute, 0.0))
            if "host_limit" in values:
                families.host_limit.add_metric([name], values["host_limit"])
            counts = pool["c"]
            for key, counter in families.counters.items():
                counter.add_metric([name], counts.get(key, 0.0))
            for reason in REFUSAL_REASONS:
                families.refused.add_metric([name, reason], counts.get(f"refused:{reason}", 0.0))
            hist = pool["hist"] or [0.0] * (len(self._histograms[name].bounds) + 2)
            families.service.add_metric(
                [name], _cumulative(self._histograms[name].bounds, hist[:-1]), hist[-1]
            )
        for stat, gauge in families.lag.items():
            gauge.add_metric([], figures["m"].get(f"lag_{stat}", 0.0))
        families.add_limits(container_limits())  # cached: no file is read here
        for kdf, choice in chosen_backends().items():
            families.kdf_backend.add_metric([kdf, choice.backend], 1.0)
        yield from families.all()


#: Collectors alive in this process: the exposition helpers refresh them before a scrape.
_collectors: weakref.WeakSet[LoopsafeCollector] = weakref.WeakSet()


def _multiprocess_directory() -> str | None:
    """Return ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multi-process mode), or None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _multiprocess_docs() -> dict[str, tuple[str, str]]:
    """Statistic -> (metric name after ``loopsafe_``, help) for every gauge."""
    docs = {attribute: (metric, doc) for attribute, metric, doc in _GAUGES}
    docs["host_limit"] = ("host_limit", "Hashes that may run at once on the host.")
    docs.update({f"lag_{stat}": (f"loop_lag_{stat}_seconds", doc) for stat, doc in _LAG})
    return docs


def _cumulative(bounds: Sequence[float], counts: Sequence[float]) -> list[tuple[str, float]]:
    cumulative = 0.0
    out = []
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        cumulative += count
        out.append(("+Inf" if bound == math.inf else repr(float(bound)), cumulative))
    return out


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
        self.host_limit = GaugeMetricFamily(
            "loopsafe_host_limit",
            "Hashes that may run at once on the host (pools with a host budget only).",
            labels=labels,
        )
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
            self.host_limit,
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
    host_wide: bool = True,
    host_key: str | None = None,
) -> LoopsafeCollector:
    """Create a `LoopsafeCollector` and register it (default: prometheus_client's ``REGISTRY``).

    In prometheus_client's multi-process mode (``PROMETHEUS_MULTIPROC_DIR``)
    the collector feeds its files; serve them with `starlette_route` or
    `django_view` without a registry (or with prometheus_client's
    ``MultiProcessCollector`` in a registry of your own).

    Returns:
        The collector: ``registry.unregister(collector); collector.close()`` undoes it.
    """
    collector = LoopsafeCollector(
        pools, lag=lag, buckets=buckets, host_wide=host_wide, host_key=host_key
    )
    (REGISTRY if registry is None else registry).register(collector)
    return collector


def _render(registry: CollectorRegistry | None, accept: str | None) -> tuple[bytes, str]:
    """Encode ``registry``; in multi-process mode (and no registry given), every process's."""
    if registry is None and _multiprocess_directory():
        from prometheus_client import multiprocess

        for collector in list(_collectors):
            collector.refresh()  # this process's figures are up to date when it answers
        registry = CollectorRegistry()  # prometheus_client's documented pattern: one per scrape
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
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
