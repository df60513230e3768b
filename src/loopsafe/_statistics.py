"""`PoolStatistics`: what a pool has done so far, as one consistent snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = ["REFUSAL_REASONS", "PoolStatistics"]

#: Why admission refuses a call (`Overloaded.reason`), in the order statistics show them.
REFUSAL_REASONS: Final = ("pending", "queue-wait", "fair-share", "priority")


@dataclass(frozen=True)
class PoolStatistics:
    """A consistent snapshot of a pool's state, taken under its lock.

    At every snapshot
    ``admitted == completed + cancelled + expired + shed + running + queued``.

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
        mean_service_time: Seconds a call keeps a worker busy, smoothed (an
            exponentially weighted mean of the recent calls): the very
            estimate admission and deadlines use. None before the first
            call finished.
        estimated_wait: Seconds a call arriving now would wait for a worker.
        shed: Calls admitted, then pushed out of the queue before they ran
            (answered with `Overloaded`) for a client below its fair share or
            a call of a higher priority.
        active_keys: Client keys with a call queued or running (calls
            without a key count as one key). The keys themselves are never
            exported: they are client addresses.
        refusals: Calls refused (at the door, or shed from the queue), by
            `Overloaded.reason`: ``pending``, ``queue-wait``, ``fair-share``,
            ``priority``.
        host_limit: Hashes that may run at once on the whole host (every
            process sharing the pool's host key), or None without a host budget.
        host_held: Host slots held now by every process with the key; without
            a host budget, the calls running in this pool.
        max_memory: Most bytes the calls running may declare together, or None.
        memory_in_use: Bytes declared by the calls running now (host-wide with
            a host budget).
        service_seconds: Seconds the calls that ran kept a worker busy, in
            all (completed and abandoned).
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
    shed: int = 0
    active_keys: int = 0
    refusals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSAL_REASONS, 0))
    host_limit: int | None = None
    host_held: int = 0
    max_memory: int | None = None
    memory_in_use: int = 0
    service_seconds: float = 0.0
