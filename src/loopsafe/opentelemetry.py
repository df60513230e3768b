"""OpenTelemetry metrics: the pool's statistics, its service time and the loop's lag.

`instrument` creates the instruments on the meter ``loopsafe`` of the global
(or a given) ``MeterProvider``; it needs only ``opentelemetry-api`` (the
SDK and an exporter are the application's choice). The names follow
OpenTelemetry's nearest conventions: the database client's connection-pool
metrics (``db.client.connection.count`` with a ``state`` of ``idle`` or
``used``, ``.max``, ``.pending_requests``, ``.timeouts``, ``.use_time``)
for the worker pool, the rate-limiting metrics' ``result`` attribute for
admission outcomes, and Node.js' ``eventloop.delay`` gauges for the loop.
The table in docs/integrations.md maps each one to its Prometheus twin.

============================  =====================  =======  ==============================
instrument                    kind                   unit     attributes
============================  =====================  =======  ==============================
loopsafe.pool.worker.count    observable up-down     {worker} loopsafe.worker.state
loopsafe.pool.worker.max      observable up-down     {worker}
loopsafe.pool.pending         observable up-down     {call}
loopsafe.pool.timeouts        observable counter     {call}
loopsafe.pool.use_time        histogram              s
loopsafe.pool.calls           observable counter     {call}   loopsafe.call.outcome
loopsafe.pool.abandoned       observable counter     {call}
loopsafe.admission.requests   observable counter     {call}   loopsafe.admission.result
loopsafe.pool.refusals        observable counter     {call}   loopsafe.refusal.reason
loopsafe.pool.estimated_wait  observable gauge       s
loopsafe.pool.active_keys     observable gauge       {key}
loopsafe.host.slots.used      observable gauge       {slot}
loopsafe.host.slots.limit     observable gauge       {slot}   (pools with a host budget)
loopsafe.pool.memory.usage    observable gauge       By
loopsafe.eventloop.delay.p50  observable gauge       s        (with a lag monitor; also .p99,
                                                              .max)
============================  =====================  =======  ==============================

Every instrument carries ``loopsafe.pool.name`` (the label value you chose,
like ``db.client.connection.pool.name``); none carries user data. Each
process reports its own figures, as OpenTelemetry's push model expects
(each worker is its own ``service.instance.id``; the backend sums them).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation
except ImportError as exc:  # pragma: no cover - exercised by a test that hides opentelemetry
    raise ImportError(
        "loopsafe.opentelemetry needs opentelemetry-api: pip install 'loopsafe[opentelemetry]'"
    ) from exc

import loopsafe
from loopsafe._observed import ObservedPool
from loopsafe._statistics import REFUSAL_REASONS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from opentelemetry.metrics import Meter, MeterProvider

    from loopsafe._lag import LoopLagMonitor
    from loopsafe._pool import HashPool
    from loopsafe._statistics import PoolStatistics

__all__ = ["METER_NAME", "PoolInstruments", "instrument"]

#: The meter's name (instrumentation scope).
METER_NAME: Final = "loopsafe"
#: Listener events whose seconds are a service time (the call ran).
_RAN: Final = frozenset({"completed", "failed", "abandoned"})
#: The default buckets of ``loopsafe.pool.use_time``, in seconds (as loopsafe.prometheus).
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_POOL: Final = "loopsafe.pool.name"


class PoolInstruments:
    """loopsafe's instruments on one meter; `close` stops them reporting."""

    def __init__(
        self,
        pools: Mapping[str, HashPool | None],
        lag: LoopLagMonitor | None,
        meter: Meter,
    ) -> None:
        """Create the instruments and attach a listener to each pool."""
        self.lag = lag
        self._closed = threading.Event()
        self._use_time = meter.create_histogram(
            "loopsafe.pool.use_time",
            unit="s",
            description="Seconds a call kept a worker busy, answered or abandoned.",
            explicit_bucket_boundaries_advisory=list(_BUCKETS),
        )
        self._observed = {
            name: ObservedPool(pool, self._listener(name)) for name, pool in pools.items()
        }
        observe = self._observe
        up_down, counter, gauge = (
            meter.create_observable_up_down_counter,
            meter.create_observable_counter,
            meter.create_observable_gauge,
        )
        up_down("loopsafe.pool.worker.count", [observe(_workers)], "{worker}",
                "Worker threads by state: used (running a call) or idle.")  # fmt: skip
        up_down("loopsafe.pool.worker.max", [observe(_one("max_workers"))], "{worker}",
                "Calls that may run at once.")  # fmt: skip
        up_down("loopsafe.pool.pending", [observe(_one("queued"))], "{call}",
                "Calls admitted and waiting for a worker.")  # fmt: skip
        counter("loopsafe.pool.timeouts", [observe(_counted("expired"))], "{call}",
                "Calls whose caller's deadline passed before they were answered.")  # fmt: skip
        counter("loopsafe.pool.calls", [observe(_outcomes)], "{call}",
                "Admitted calls by ending: ok, error, cancelled, expired, shed.")  # fmt: skip
        counter("loopsafe.pool.abandoned", [observe(_counted("abandoned"))], "{call}",
                "Calls that ran to the end for a caller that had already gone.")  # fmt: skip
        counter("loopsafe.admission.requests", [observe(_admissions)], "{call}",
                "Calls at admission by result: acquired or rejected.")  # fmt: skip
        counter("loopsafe.pool.refusals", [observe(_refusals)], "{call}",
                "Calls refused with Overloaded (at the door or shed), by reason.")  # fmt: skip
        gauge("loopsafe.pool.estimated_wait", [observe(_one("estimated_wait"))], "s",
              "Seconds a call arriving now would wait for a worker.")  # fmt: skip
        gauge("loopsafe.pool.active_keys", [observe(_one("active_keys"))], "{key}",
              "Client keys with a call queued or running.")  # fmt: skip
        gauge("loopsafe.host.slots.used", [observe(_one("host_held"))], "{slot}",
              "Slots held on the host (no host budget: the calls running).")  # fmt: skip
        gauge("loopsafe.host.slots.limit", [observe(_host_limit)], "{slot}",
              "Hashes that may run at once on the host (pools with a host budget).")  # fmt: skip
        gauge("loopsafe.pool.memory.usage", [observe(_one("memory_in_use"))], "By",
              "Bytes declared by the hashes running.")  # fmt: skip
        for stat in ("p50", "p99", "max"):
            gauge(f"loopsafe.eventloop.delay.{stat}", [self._lag_callback(stat)], "s",
                  f"Event-loop lag, {stat} of the monitor's recent window.")  # fmt: skip

    def _listener(self, name: str) -> Callable[[str, float], None]:
        attributes = {_POOL: name}
        use_time = self._use_time

        def listen(event: str, seconds: float) -> None:
            if event in _RAN and not self._closed.is_set():
                use_time.record(seconds, attributes)

        return listen

    def _observe(
        self, read: Callable[[PoolStatistics, dict[str, int]], Iterable[tuple[float, str, str]]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """A callback reporting ``read(stats, counts)``: (value, attribute, its value) ."""

        def callback(options: CallbackOptions) -> Iterable[Observation]:  # noqa: ARG001
            if self._closed.is_set():
                return []
            out = []
            for name, observed in self._observed.items():
                stats, counts = observed.read()
                for value, key, label in read(stats, counts):
                    attributes = {_POOL: name, key: label} if key else {_POOL: name}
                    out.append(Observation(value, attributes))
            return out

        return callback

    def _lag_callback(self, stat: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:  # noqa: ARG001
            if self.lag is None or self._closed.is_set():
                return []
            return [Observation(float(getattr(self.lag.recent(), stat)))]

        return callback

    def close(self) -> None:
        """Stop reporting and remove the listeners (instruments stay on the meter, silent)."""
        self._closed.set()
        for observed in self._observed.values():
            observed.close()


_Reading = list[tuple[float, str, str]]


def _one(attribute: str) -> Callable[[PoolStatistics, dict[str, int]], _Reading]:
    def read(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
        return [(float(getattr(stats, attribute)), "", "")]

    return read


def _counted(key: str) -> Callable[[PoolStatistics, dict[str, int]], _Reading]:
    def read(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
        return [(float(counts[key]), "", "")]

    return read


def _workers(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
    state = "loopsafe.worker.state"
    idle = max(stats.threads - stats.running, 0)
    return [(float(stats.running), state, "used"), (float(idle), state, "idle")]


def _outcomes(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
    outcome = "loopsafe.call.outcome"
    return [
        (float(counts["completed"] - counts["failed"]), outcome, "ok"),
        (float(counts["failed"]), outcome, "error"),
        (float(counts["cancelled"]), outcome, "cancelled"),
        (float(counts["expired"]), outcome, "expired"),
        (float(counts["shed"]), outcome, "shed"),
    ]


def _admissions(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
    result = "loopsafe.admission.result"
    return [
        (float(counts["admitted"]), result, "acquired"),
        (float(counts["rejected"]), result, "rejected"),
    ]


def _refusals(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
    reason = "loopsafe.refusal.reason"
    return [(float(counts[f"refused:{r}"]), reason, r) for r in REFUSAL_REASONS]


def _host_limit(stats: PoolStatistics, counts: dict[str, int]) -> _Reading:  # noqa: ARG001
    return [] if stats.host_limit is None else [(float(stats.host_limit), "", "")]


def instrument(
    pools: Mapping[str, HashPool | None] | None = None,
    *,
    lag: LoopLagMonitor | None = None,
    meter_provider: MeterProvider | None = None,
) -> PoolInstruments:
    """Report loopsafe's pools (and the loop's lag) through OpenTelemetry.

    Args:
        pools: Name -> pool (``loopsafe.pool.name``); None as a pool means the
            default pool, looked up at each collection. Default ``{"default": None}``.
        lag: A running `LoopLagMonitor` (``keep_all=False``) whose recent window
            is reported; it may also be set later as ``instruments.lag``.
        meter_provider: Default: the global one (``metrics.get_meter_provider()``).

    Returns:
        The `PoolInstruments`; ``close()`` stops them.

    Raises:
        TypeError: If ``pools`` is not a mapping.
        ValueError: If a pool name is empty.
    """
    if pools is None:
        pools = {"default": None}
    if not isinstance(pools, Mapping):
        raise TypeError("pools must map a name to a HashPool (or None)")
    if not all(pools):
        raise ValueError("a pool's name must be a non-empty string")
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    meter = provider.get_meter(METER_NAME, loopsafe.__version__)
    return PoolInstruments(pools, lag, meter)
