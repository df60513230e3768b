"""Container limits: how many CPUs and how much memory this process may really use.

A process in a container sees the host's cores (`os.cpu_count`, the affinity
mask) but the kernel lets it use only what its cgroup allows: a Kubernetes
``limits: {cpu: 2, memory: 1Gi}`` on a 64-core node. This module reads those
limits, the way the kernel lays them out, so the default pool is sized from
the limit and not from the host:

- ``/proc/self/cgroup`` names the process's cgroup in each hierarchy
  (``0::/path`` for cgroup v2; ``4:cpu,cpuacct:/path`` for each v1 hierarchy);
- ``/proc/self/mountinfo`` says where each hierarchy is mounted and which part
  of it (the mount's *root*: a container often sees only its own subtree);
- the limit files of the process's cgroup **and of every ancestor visible under
  the mount**, the tightest one winning (the kernel enforces every level):
  v2 ``cpu.max`` and ``memory.max``; v1 ``cpu.cfs_quota_us`` /
  ``cpu.cfs_period_us`` and ``memory.limit_in_bytes`` (plus the
  ``hierarchical_memory_limit`` line of ``memory.stat``, which v1 computes over
  every ancestor, even those outside the container's view).

The CPU limit is ``ceil(quota / period)``, never below 1 and never above the
affinity count. ``cpu.weight`` and ``cpu.shares`` are ignored: they divide CPU
time under contention, they do not limit it (a Kubernetes CPU *request* without
a limit sets only shares). A memory limit at or above the machine's physical
memory binds nothing and counts as none (v1 writes "unlimited" as a huge number).

Detection never raises into the application: a missing file means "no limit
at this level"; an unreadable file or a value that does not parse is skipped
and said once in the log (``loopsafe.limits``). ``LOOPSAFE_CGROUP_DETECT=0``
turns detection off; explicit settings (``max_workers``, ``max_memory``) always
win over what is detected.

Limits can change while the process runs (Kubernetes in-place pod resize), so
`container_limits` is cached and a daemon thread re-reads the files every
`REFRESH_INTERVAL` seconds; pools built with the default worker count follow.
Nothing here ever reads a file on the caller's thread except the first call.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Final

from loopsafe._cgroup import (
    DETECT_ENV,
    HASHING_MEMORY_SHARE,
    ContainerLimits,
    _affinity_cpus,
    _warned,
    _warned_lock,
    detect,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "DETECT_ENV",
    "HASHING_MEMORY_SHARE",
    "REFRESH_INTERVAL",
    "ContainerLimits",
    "container_limits",
    "detect",
    "follow",
    "hashing_memory_budget",
    "usable_cpus",
]

_log = logging.getLogger("loopsafe.limits")

#: Seconds between two reads of the limit files by the watcher thread.
REFRESH_INTERVAL: Final = 5.0


# -- the process-wide cache and the thread that keeps it fresh --------------------------


class _Watcher:
    """Cached limits, re-read every ``interval`` seconds by a daemon thread.

    The first `get` reads the files on the caller's thread (a few small reads,
    tens of microseconds); after that only the watcher thread reads them, so an
    event loop that asks never touches the filesystem. Subscribers (pools
    with the default worker count) are held weakly and called on the watcher
    thread when the limits change.
    """

    def __init__(self, detect_now: Callable[[], ContainerLimits], interval: float) -> None:
        self._detect = detect_now
        self._interval = interval
        self._lock = threading.Lock()
        self._limits: ContainerLimits | None = None
        self._subscribers: list[weakref.WeakMethod[Callable[[ContainerLimits], None]]] = []
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def get(self) -> ContainerLimits:
        """Return the cached limits, reading them on the first call only."""
        limits = self._limits
        if limits is None:
            with self._lock:
                if self._limits is None:
                    self._limits = self._detect_safely()
                limits = self._limits
        if self._thread is None:
            self._start()
        return limits

    def refresh(self) -> ContainerLimits:
        """Read the limits now; tell the subscribers if they changed. Never raises."""
        new = self._detect_safely()
        with self._lock:
            old, self._limits = self._limits, new
            self._subscribers = [ref for ref in self._subscribers if ref() is not None]
            subscribers = list(self._subscribers)
        if old is not None and new != old:
            _log.info("container limits changed: %s", new.describe())
            for ref in subscribers:
                method = ref()
                if method is None:  # pragma: no cover - collected since the copy
                    continue
                try:
                    method(new)
                except Exception:  # noqa: BLE001 - one broken pool must not stop the rest
                    _log.exception("loopsafe could not apply the new container limits")
        return new

    def subscribe(self, method: Callable[[ContainerLimits], None]) -> None:
        """Call the bound ``method(limits)`` on each change, for as long as its object lives."""
        with self._lock:
            self._subscribers.append(weakref.WeakMethod(method))
        self.get()

    def close(self) -> None:
        """Stop the watcher thread (tests; the process-wide one runs until exit)."""
        self._stopped.set()

    def _detect_safely(self) -> ContainerLimits:
        try:
            return self._detect()
        except Exception:  # noqa: BLE001 - a detection bug must never reach the application
            with _warned_lock:
                first = "detect" not in _warned
                _warned.add("detect")
            if first:
                _log.exception("loopsafe could not read the container limits; using the affinity")
            affinity = _affinity_cpus()
            return ContainerLimits(cpus=affinity, affinity=affinity)

    def _start(self) -> None:
        """Start the watcher thread once (Linux only, and not when detection is off)."""
        with self._lock:
            if self._thread is not None:
                return
            limits = self._limits
            needed = sys.platform.startswith("linux") and (
                limits is None or limits.source != "disabled"
            )
            self._thread = threading.Thread(
                target=self._run, name="loopsafe-limits-watcher", daemon=True
            )
            if not needed:
                return  # a thread object never started: nothing to watch
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.refresh()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist in the child, and its lock may have
        # been held at the fork: start afresh (the cached limits stay valid).
        # Pools that follow the limits came along (gunicorn --preload), so the
        # child watches for them at once.
        self._lock = threading.Lock()
        self._thread = None
        if self._limits is not None and any(ref() is not None for ref in self._subscribers):
            self._start()


_watcher = _Watcher(detect, REFRESH_INTERVAL)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watcher._after_fork_in_child)  # noqa: SLF001 - own class


def container_limits() -> ContainerLimits:
    """Return the CPU and memory limits of this process's container, and where they came from.

    Cached: the files are read on the first call, then every `REFRESH_INTERVAL`
    seconds by a daemon thread (never on the caller's thread). Outside Linux,
    outside any cgroup, or with ``LOOPSAFE_CGROUP_DETECT=0``, ``cpus`` is the
    affinity count and there is no memory limit.
    """
    return _watcher.get()


def usable_cpus() -> int:
    """Return the number of CPUs this process may use: affinity, lowered to the cgroup CPU limit.

    This is the default worker count of a `HashPool`. ``LOOPSAFE_CGROUP_DETECT=0``
    makes it the affinity count alone.
    """
    return container_limits().cpus


def hashing_memory_budget() -> int | None:
    """Return the bytes hashing may use by default: half the cgroup memory limit, or None.

    None means no memory limit was found (or detection is off): no default budget.
    An explicit ``max_memory`` always wins over this.
    """
    return container_limits().hashing_memory


def follow(method: Callable[[ContainerLimits], None]) -> None:
    """Call the bound ``method(limits)`` on the watcher thread whenever the limits change.

    Held weakly: the subscription ends when the method's object is collected.
    """
    _watcher.subscribe(method)
