"""prometheus_client's multi-process mode: a process's loopsafe figures in its per-pid files.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps every metric's
values in memory-mapped files per process, and ``MultiProcessCollector`` sums
them at a scrape. `MultiProcessValues` writes loopsafe's figures (see
`loopsafe._host_figures`) there as ordinary prometheus_client metrics.
Imported by `loopsafe.prometheus` only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

from prometheus_client import Counter, Gauge, Histogram

from loopsafe._limits import container_limits

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from loopsafe._host_figures import Figures

__all__ = ["MultiProcessValues"]


class MultiProcessValues:
    """This process's figures as prometheus_client metrics, kept in its multi-process files.

    ``MultiProcessCollector`` sums them: counters and the histogram over every
    process that ever wrote, gauges over the live ones (``livesum``) or their
    worst (``livemax``). A dead worker's gauges stay until
    ``prometheus_client.multiprocess.mark_process_dead(pid)`` removes them
    (gunicorn's ``child_exit`` hook; see docs/deploying.md).
    """

    def __init__(
        self,
        bounds: Sequence[float],
        gauges: Mapping[str, tuple[str, str]],
        counters: Iterable[tuple[str, str]],
    ) -> None:
        """Make the metrics; ``gauges`` maps a statistic to (name after ``loopsafe_``, help)."""
        self._lock = threading.Lock()
        self._docs = dict(gauges)
        self._gauges: dict[str, Gauge] = {}
        self._counters = {
            key: Counter(f"loopsafe_{key}", doc, ["pool"], registry=None) for key, doc in counters
        }
        self._refused = Counter(
            "loopsafe_refused", "Calls refused with Overloaded, by reason.", ["pool", "reason"],
            registry=None,
        )  # fmt: skip
        self._service = Histogram(
            "loopsafe_service_seconds",
            "Seconds a call kept a worker busy (calls that ran, answered or abandoned).",
            ["pool"],
            buckets=bounds,
            registry=None,
        )
        self._limits = {
            name: Gauge(name, doc, ["source"], registry=None, multiprocess_mode="livemax")
            for name, doc in (
                ("loopsafe_usable_cpus", "CPUs a default-sized pool uses."),
                ("loopsafe_cpu_limit_cpus", "The container's CPU quota in CPUs."),
                ("loopsafe_memory_limit_bytes", "The container's memory limit in bytes."),
            )
        }
        self._published: dict[tuple[str, str], float] = {}

    def _set(
        self, attribute: str, mode: Literal["livesum", "livemax"], labels: list[str], value: float
    ) -> None:
        gauge = self._gauges.get(attribute)
        if gauge is None:
            metric, doc = self._docs[attribute]
            names = ["pool"] if labels else []
            gauge = self._gauges[attribute] = Gauge(
                f"loopsafe_{metric}", doc, names, registry=None, multiprocess_mode=mode
            )
        (gauge.labels(*labels) if labels else gauge).set(value)

    def observe(self, pool: str, seconds: float) -> None:
        self._service.labels(pool).observe(seconds)

    def update(self, figures: Figures) -> None:
        """Set the gauges and add what the counters gained since the last update."""
        with self._lock:
            for pool, values in figures["pools"].items():
                for attribute, value in values["s"].items():
                    self._set(attribute, "livesum", [pool], value)
                for attribute, value in values["m"].items():
                    self._set(attribute, "livemax", [pool], value)
                for key, value in values["c"].items():
                    gained = value - self._published.get((pool, key), 0.0)
                    if gained <= 0:
                        continue
                    self._published[pool, key] = value
                    if key.startswith("refused:"):
                        self._refused.labels(pool, key.partition(":")[2]).inc(gained)
                    else:
                        self._counters[key].labels(pool).inc(gained)
            for attribute, value in figures["m"].items():
                self._set(attribute, "livemax", [], value)
            limits = container_limits()
            self._limits["loopsafe_usable_cpus"].labels(limits.source).set(limits.cpus)
            if limits.cpu_quota is not None:
                self._limits["loopsafe_cpu_limit_cpus"].labels(limits.source).set(limits.cpu_quota)
            if limits.memory_limit is not None:
                memory = self._limits["loopsafe_memory_limit_bytes"]
                memory.labels(limits.source).set(limits.memory_limit)
