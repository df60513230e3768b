"""How long one call keeps a worker busy: the engine's one service-time estimate.

Admission, the no-hopeless-start rule and `HashPool.statistics` all read the
same `ServiceTime`. Once calls have finished it is a smoothed measurement (an
exponentially weighted moving average, and its mean deviation for the worst
case). Before that, a pool is *cold*, and the estimate comes from, in order:

- the estimate another process with the same host key published (a
  recycled worker starts from its siblings' figure);
- a ``cost=`` a caller declared (seconds);
- an *estimator* a caller declared (``cost=`` a callable, such as
  `Hasher.estimated_seconds`: a scaled-down hash timed once), which a worker
  thread runs before its first call: never the event loop.

Until one of those is known, admission cannot judge a wait and admits; the
moment one becomes known `ServiceTime` says so (`record` and `measure`
return True), and the pool judges again the calls it admitted blind
(`loopsafe._admission.Admission.rejudge`).

Thread-safety: its own lock, a leaf: nothing is called while it is held.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Final, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe._host import HostSlots

__all__ = ["Cost", "ServiceTime", "check_cost"]

_log = logging.getLogger("loopsafe.pool")

#: What a caller may declare about a call's cost: seconds, a callable that
#: measures them (run once, on a worker, while the pool is cold), or None.
Cost: TypeAlias = "float | Callable[[], float | None] | None"

#: Weight of the newest sample in the service-time estimate (an exponentially
#: weighted moving average): recent enough to follow a change of algorithm or
#: machine load within a few calls, smooth enough to ignore one outlier.
_EWMA_WEIGHT: Final = 0.2


def check_cost(cost: object) -> None:
    """Raise unless ``cost`` is None, a positive finite number of seconds, or a callable."""
    if cost is None or callable(cost):
        return
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise TypeError(f"cost must be seconds, a callable or None, not {type(cost).__name__}")
    if not 0 < cost < math.inf:
        raise ValueError("cost must be a positive number of seconds, a callable, or None")


class ServiceTime:
    """The smoothed service time of one pool, with its cold-start priors.

    Args:
        host: The host's slots, whose published estimate is the first prior
            and to which this pool's measurements are published; or None.
    """

    def __init__(self, host: HostSlots | None) -> None:
        """Start cold, with the host's published service time as the prior."""
        self.reset_after_fork()
        self._host = host
        self.ewma: float | None = None
        self._dev = 0.0  # smoothed |sample - mean|, like TCP's RTTVAR
        self._host_prior = None if host is None else host.service_time()
        self._cost_prior: float | None = None
        self._estimator: Callable[[], float | None] | None = None
        self._measured = False  # an estimator ran (or is running): never twice

    def reset_after_fork(self) -> None:
        """A fresh lock: in a forked child another thread of the parent may have held it."""
        self._lock = threading.Lock()

    def estimate(self, cost: Cost = None) -> float | None:
        """Seconds one call keeps a worker busy, as far as the pool knows.

        The measured average once a call has finished. Before that: the
        estimate another process with the host key published, else this
        caller's ``cost`` (or the latest declared); a callable ``cost`` is
        kept for a worker to run (`take_estimator`). None: nothing known yet.
        """
        ewma = self.ewma
        if ewma is not None:
            return ewma
        if self._host_prior is not None:
            return self._host_prior
        with self._lock:
            if callable(cost):
                if self._estimator is None and not self._measured:
                    self._estimator = cost
            elif cost is not None:
                self._cost_prior = float(cost)
            return self._cost_prior

    def known(self) -> bool:
        """Whether any estimate exists (measured or a prior)."""
        return self.ewma is not None or self._host_prior is not None or self._cost_prior is not None

    def worst(self) -> float | None:
        """Seconds a call should be given to finish: the mean plus twice its deviation.

        TCP's retransmission rule: a hash slowed by a busy machine is not
        started for a caller who will be gone. Cold: the prior, as `estimate`.
        """
        ewma = self.ewma
        if ewma is not None:
            return ewma + 2 * self._dev
        return self._host_prior if self._host_prior is not None else self._cost_prior

    def take_estimator(self) -> Callable[[], float | None] | None:
        """The estimator a cold pool should run now, once (on a worker thread), or None."""
        if self.known():
            return None
        with self._lock:
            estimator, self._estimator = self._estimator, None
            if estimator is not None:
                self._measured = True
            return estimator

    def measure(self, estimator: Callable[[], float | None]) -> bool:
        """Run ``estimator`` (on a worker) and keep its answer as the prior.

        Returns:
            Whether this made a cold pool's estimate known.
        """
        try:
            seconds = estimator()
        except Exception:  # noqa: BLE001 - an estimate is advice: the first answer will do
            _log.debug("loopsafe: the cost estimator failed", exc_info=True)
            return False
        if seconds is None or not 0 < seconds < math.inf:
            return False
        with self._lock:
            was_known = self.known()
            if self.ewma is None:
                self._cost_prior = seconds
            return not was_known

    def record(self, elapsed: float) -> bool:
        """Fold one service time into the estimate and share it with the host.

        Returns:
            Whether this made a cold pool's estimate known.
        """
        with self._lock:
            was_known = self.known()
            ewma = self.ewma
            if ewma is None:
                self.ewma = elapsed
            else:
                self._dev += _EWMA_WEIGHT * (abs(elapsed - ewma) - self._dev)
                self.ewma = ewma + _EWMA_WEIGHT * (elapsed - ewma)
            published = self.ewma
        if self._host is not None:
            self._host.publish_service_time(published)
        return not was_known
