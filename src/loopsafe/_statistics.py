"""`PoolStatistics`: what a pool has done so far, as one consistent snapshot."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PoolStatistics"]


@dataclass(frozen=True)
class PoolStatistics:
    """A consistent snapshot of a pool's state, taken under its lock.

    At every snapshot ``admitted == completed + cancelled + expired + running + queued``.

    Attributes:
        max_workers: Calls that may run at once.
        threads: Worker threads alive now (started lazily, up to max_workers).
        running: Calls running now.
        queued: Calls admitted and waiting for a worker.
        admitted: Calls accepted since the pool was made.
        completed: Calls that ran and whose caller was answered (result or exception).
        failed: Of ``completed``, those whose callable raised.
        rejected: Calls refused at the door with `Overloaded`.
        cancelled: Calls whose caller was cancelled (or the pool closed) first.
        expired: Calls whose caller's deadline passed first.
        abandoned: Calls that ran to the end for a caller that had already gone
            (a cancelled or expired call that had already started). This is the
            work wasted on callers who gave up.
        mean_service_time: Mean seconds a call kept a worker busy, or None
            before the first call finished.
        estimated_wait: Seconds a call arriving now would wait for a worker.
    """

    max_workers: int
    threads: int
    running: int
    queued: int
    admitted: int
    completed: int
    failed: int
    rejected: int
    cancelled: int
    expired: int
    abandoned: int
    mean_service_time: float | None
    estimated_wait: float
