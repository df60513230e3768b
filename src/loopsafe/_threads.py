"""Which threads hash: a pool's workers mark themselves and yield the CPU to the loop.

A worker calls `become_worker` once: on Linux it raises its own thread's nice
value (threads it starts inherit it), and it marks itself so that CPU-bound
code can ask `on_worker` whether a pool already runs one call per core here
(Argon2 then computes its lanes on this one thread instead of starting more).
Neither the pool nor the hashers import each other; both import this.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from loopsafe._settings import MAX_NICE

__all__ = ["become_worker", "on_worker"]

_log = logging.getLogger("loopsafe.pool")
_worker = threading.local()


def become_worker(nice: int) -> None:
    """Mark the calling thread as a pool worker and lower its CPU priority by ``nice``."""
    _worker.active = True
    _lower_thread_priority(nice)


def on_worker() -> bool:
    """Whether the calling thread is a `HashPool` worker.

    The pool already runs one call per core, so CPU-bound code that could
    start threads of its own runs on one here (Argon2 computes its lanes with
    one thread on a worker, see `loopsafe.Argon2Hasher`).
    """
    return bool(getattr(_worker, "active", False))


def _lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (Linux only; else nothing).

    On Linux the nice value belongs to the thread, and threads it starts
    (argon2's lanes) inherit it. Elsewhere ``setpriority`` would name a process,
    so nothing is done. Raising it needs no privilege; failing is harmless.
    """
    if increment == 0 or not sys.platform.startswith("linux"):
        return
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(MAX_NICE, current + increment))
    except OSError as exc:  # pragma: no cover - e.g. a seccomp filter forbids it
        _log.debug("could not lower the worker thread's priority: %s", exc)
