"""The engine: run synchronous callables on dedicated threads, with admission control.

`HashPool` knows nothing about passwords. It owns a bounded set of worker
threads and a queue, and decides at the door whether a call may join the
queue (admission), what happens to a call whose caller stopped waiting
(cancellation and deadlines), and what it has done so far (statistics).
The queue is a `loopsafe._fair.FairQueue`: FIFO for calls without a client
key, fair across keys (and by priority) for calls that carry one.

How an async caller waits for a worker's answer, on asyncio or trio, lives in
`loopsafe._waiting`; this module is plain threads and locks, so one pool serves
any number of event loops, in any number of threads, at the same time.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any, TypeVar

from loopsafe import _limits, _waiting
from loopsafe._admission import _Admission
from loopsafe._budget import Budget
from loopsafe._calls import _CANCELLED, _EXPIRED, _QUEUED, _RUNNING, _Call, _Hidden
from loopsafe._fair import FairQueue, Key, check_key, check_priority
from loopsafe._host import HostSlots
from loopsafe._runtime_dir import check_host_key
from loopsafe._settings import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_QUEUE_WAIT,
    DEFAULT_NICE,
    PoolSettings,
    _checked_host_limit,
    _checked_max_memory,
    _checked_nice,
    _checked_pending,
    _checked_queue_wait,
    _checked_workers,
)
from loopsafe._statistics import REFUSAL_REASONS, PoolStatistics
from loopsafe._worker import _WorkerLoop
from loopsafe.exceptions import PoolClosed

if sys.version_info >= (3, 11):
    from typing import Self, TypeVarTuple, Unpack
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self, TypeVarTuple, Unpack

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

__all__ = ["HashPool"]

_log = logging.getLogger("loopsafe.pool")

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


class HashPool(_Admission, _WorkerLoop):
    """A bounded, cancellation-aware pool for CPU-heavy calls, with admission control.

    The pool runs synchronous callables on its own worker threads (never the
    event loop's default executor, never asgiref's thread-sensitive thread) and
    lets the caller await the result from asyncio, uvloop or trio.

    Admission happens when a call arrives: if the queue already holds
    ``max_pending`` calls, or the estimated wait (mean service time x calls
    queued ahead / workers) would exceed ``max_queue_wait``, `run` raises
    `Overloaded` at once and nothing is queued. A server answers that with
    HTTP 503, which costs microseconds, instead of making every client wait
    past its own timeout.

    Calls may carry a client ``key`` (see `run`): they are then served round
    robin across keys, and when the pool is full the key holding more than
    its fair share gives way first (`loopsafe._admission`). Without keys: one
    shared key, first come, first served.

    A call whose caller is cancelled or times out before it starts is removed
    and never runs; one already running finishes on its worker and the result is
    dropped, while the caller's cancellation returns at once. Every admitted
    call that is not cancelled is answered with its result or its exception.

    Args:
        max_workers: Calls that run at once. Defaults to the CPUs this process
            may use (`loopsafe.usable_cpus`: the affinity count, lowered to the
            container's cgroup CPU limit), and then follows that limit as it
            changes: more threads than cores only adds memory (Argon2 takes
            ~100 MiB per hash at Django's defaults) and latency.
        max_queue_wait: Longest estimated queue wait, in seconds, at which a
            call is still admitted. None disables the wait-based check. Keep it
            below your clients' timeout minus one hash.
        max_pending: Most calls that may wait in the queue at once.
        executor: Optional `concurrent.futures.Executor` (for example a
            ``ProcessPoolExecutor`` for a hasher that holds the GIL). Calls are
            then forwarded to it; admission, deadlines and statistics still
            apply, and at most ``max_workers`` calls are in it at once.
        nice: How much to lower the worker threads' CPU priority: their nice
            value is raised by this much, up to 19 (Linux; ignored elsewhere).
            Hashing is work that can wait a millisecond; the event loop is not.
            Argon2's lane threads inherit it. 0 leaves the priority alone.
        host_limit: Most calls running at once on the whole host, across
            every process whose pool has the same ``host_key`` (the workers of
            ``uvicorn --workers N`` or ``gunicorn -w N``, forked or spawned).
            ``"auto"`` is the usable CPUs. None: no host budget (each process
            is bounded by its own ``max_workers`` only). A worker holds one of
            the host's slots (a ``flock`` on a file, released by the kernel if
            the process dies) for the length of each call; admission counts
            the slots other processes hold when it estimates the wait.
        host_key: Names the host budget to share; default: the user id and the
            program's name (``1000-gunicorn``). See `loopsafe._host`.
        max_memory: Most bytes the calls running at once may declare together
            (``run(..., memory=)``; `PasswordHash` declares each hasher's
            `Hasher.memory_per_hash`). Host-wide with ``host_limit``. A call that
            declares more than the whole budget runs alone. None: half the
            container's memory limit where a cgroup sets one
            (`loopsafe._limits.hashing_memory_budget`), else no bound beyond
            ``max_workers`` (and ``host_limit``).
        name: Shown in thread names and repr.
        settings: Every setting above as one `PoolSettings` value, in place
            of the separate keywords (giving both is a `TypeError`).

    Raises:
        TypeError: If a setting has the wrong type (every problem is listed).
        ValueError: If a bound is not positive or not finite, or ``nice`` is
            outside 0-19 (every problem is listed).
        loopsafe.exceptions.HostBudgetUnavailable: ``host_limit`` was given
            but the host budget's files cannot be made (never a silent loss
            of the bound).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        executor: Executor | None = None,
        nice: int = DEFAULT_NICE,
        host_limit: int | str | None = None,
        host_key: str | None = None,
        max_memory: int | None = None,
        name: str = "loopsafe",
        settings: PoolSettings | None = None,
    ) -> None:
        """Create a pool; its threads start lazily on first use."""
        settings = PoolSettings.merge(
            settings,
            max_workers=max_workers,
            max_queue_wait=max_queue_wait,
            max_pending=max_pending,
            nice=nice,
            host_limit=host_limit,
            host_key=host_key,
            max_memory=max_memory,
        )
        max_workers, max_queue_wait, max_pending, nice, host_limit, host_key, max_memory = (
            settings.pool_values()
        )
        self._max_workers = _checked_workers(max_workers)
        self._follows_limits = False
        self._max_queue_wait = _checked_queue_wait(max_queue_wait)
        self._max_pending = _checked_pending(max_pending)
        self._nice = _checked_nice(nice)
        limit = _checked_host_limit(host_limit)
        if host_key is not None:
            check_host_key(host_key)
        host = None if limit is None else HostSlots(limit, host_key)
        self._budget = Budget(host, _checked_max_memory(max_memory))
        self._executor = executor
        self._name = name
        self._reset_after_fork()
        self._closed = False
        self._listeners: tuple[Callable[[str, float], None], ...] = ()
        _live_pools.add(self)
        if max_workers is None:
            self._follow_limits()

    def _reset_after_fork(self) -> None:
        """(Re)create threads' state and counters; in a forked child the parent's are gone."""
        self._cond = threading.Condition(threading.Lock())
        self._queue: FairQueue[_Call[Any]] = FairQueue()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._running = 0
        self._thread_seq = 0
        self._drained: list[_waiting.Deliver] = []
        # Counters start afresh in a forked child: the parent's calls are not its own.
        self._admitted = 0
        self._completed = 0
        self._failed = 0
        self._rejected = 0
        self._cancelled = 0
        self._expired = 0
        self._abandoned = 0
        self._shed = 0
        self._refusals: Counter[str] = Counter()
        self._service_total = 0.0
        self._budget.reset_after_fork()

    # -- configuration, read-only -------------------------------------------------

    @property
    def max_workers(self) -> int:
        """Calls that may run at once; writable like anyio's ``total_tokens`` (None: the CPUs).

        Raising it lets queued calls start at once; lowering it lets the calls
        running now finish and starts no new one until fewer than the new bound run.
        """
        return self._max_workers

    @max_workers.setter
    def max_workers(self, value: int | None) -> None:
        workers = _checked_workers(value)
        if value is None:
            self._follow_limits()
        else:
            self._follows_limits = False
        self._resize(workers)

    def _follow_limits(self) -> None:
        """Size the pool from the container's CPU limit from now on, as it changes."""
        if not self._follows_limits:
            self._follows_limits = True
            _limits.follow(self._on_limits)

    def _on_limits(self, limits: _limits.ContainerLimits) -> None:
        """Follow the container's new limits if sized by default (on the watcher thread)."""
        if self._follows_limits and not self._closed:
            self._resize(limits.cpus, only_if_following=True)

    def _resize(self, value: int, *, only_if_following: bool = False) -> None:
        with self._cond:
            if only_if_following and not self._follows_limits:
                return
            self._max_workers = value
            wanted = min(len(self._queue) - self._idle, value - len(self._threads))
            for _ in range(wanted):
                self._start_worker()
            # Idle workers beyond a lowered bound wake up and exit.
            self._cond.notify_all()

    @property
    def max_queue_wait(self) -> float | None:
        """Longest estimated queue wait at which a call is admitted, in seconds; writable."""
        return self._max_queue_wait

    @max_queue_wait.setter
    def max_queue_wait(self, value: float | None) -> None:
        value = _checked_queue_wait(value)
        with self._cond:
            self._max_queue_wait = value

    @property
    def max_pending(self) -> int:
        """Most calls that may wait in the queue at once; writable (calls queued stay)."""
        return self._max_pending

    @max_pending.setter
    def max_pending(self, value: int) -> None:
        value = _checked_pending(value)
        with self._cond:
            self._max_pending = value

    @property
    def nice(self) -> int:
        """How much the worker threads' nice value is raised."""
        return self._nice

    @property
    def host_limit(self) -> int | None:
        """Calls that may run at once across the host's processes with `host_key`, or None."""
        host = self._budget.host
        return None if host is None else host.limit

    @property
    def host_key(self) -> str | None:
        """The host budget's key, or None without a host budget."""
        host = self._budget.host
        return None if host is None else host.key

    @property
    def max_memory(self) -> int | None:
        """The ``max_memory`` given (None: the default, see `memory_budget`)."""
        return self._budget.max_memory

    @property
    def memory_budget(self) -> int | None:
        """The memory bound in force: ``max_memory``, else half the cgroup limit, else None."""
        return self._budget.memory_budget()

    @property
    def name(self) -> str:
        """The pool's name, used in thread names, repr and metrics."""
        return self._name

    @property
    def uses_executor(self) -> bool:
        """Whether calls are forwarded to an ``executor`` given at construction."""
        return self._executor is not None

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def __repr__(self) -> str:
        """Show the configuration and the live counters (never any call's arguments)."""
        return (
            f"<HashPool {self._name!r} max_workers={self._max_workers} "
            f"max_queue_wait={self._max_queue_wait} max_pending={self._max_pending} "
            f"nice={self._nice} host_limit={self.host_limit} max_memory={self.memory_budget} "
            f"running={self._running} queued={len(self._queue)}"
            f"{' closed' if self._closed else ''}>"
        )

    # -- the public API -----------------------------------------------------------

    async def run(
        self,
        fn: Callable[[Unpack[PosArgsT]], T],
        /,
        *args: Unpack[PosArgsT],
        key: Key = None,
        priority: int = 0,
        timeout: float | None = None,
        memory: int = 0,
        cost: float | None = None,
    ) -> T:
        """Run ``fn(*args)`` on a worker thread and return its result.

        Use `loopsafe.bind` to pass keyword arguments (like anyio's
        ``to_thread.run_sync`` with ``functools.partial``: a ``ParamSpec``
        cannot carry the keyword-only ``timeout`` alongside the callable's own
        keywords). Unlike a partial, `bind` hides the arguments from its repr.

        The callable runs in a copy of the caller's `contextvars` context
        (unless an ``executor`` was given: contexts do not cross processes).

        Args:
            fn: A synchronous callable. It must not touch the event loop.
            *args: Positional arguments for ``fn``.
            key: The client the call is for (its address, a subnet, an
                account): str, bytes, int, an `ipaddress` address or network,
                or a tuple of those. Under load each key gets a fair share of
                the workers. None (the default) is one shared key. Keys are
                never logged or exported.
            priority: -3 to 3; higher runs first and is shed last (0 by
                default). For calls that matter more than anonymous logins:
                a signed-in user changing their password, a login that passed
                a CAPTCHA.
            timeout: Seconds to wait for the result. A call still queued at its
                deadline never runs; one already running finishes and its
                result is dropped. A call whose remaining time is shorter than
                the pool's measured service time when a worker takes it is not
                started either (it could not finish in time): its caller gets
                the `TimeoutError` at once.
            memory: Bytes ``fn`` needs while it runs, counted against ``max_memory``.
            cost: Seconds ``fn`` is expected to keep a worker busy: the service
                time admission assumes while the pool has measured none (a
                cold pool), so a burst at startup is refused like one on a warm
                pool. `PasswordHash` passes `Hasher.estimated_seconds` here.

        Returns:
            What ``fn`` returned.

        Raises:
            Overloaded: Admission refused the call, or pushed it out of the
                queue for a fairer claim; it never ran.
            PoolClosed: The pool is closed, or was closed while the call waited.
            TypeError: ``key`` or ``priority`` has the wrong type.
            TimeoutError: ``timeout`` passed before the result arrived.
            BaseException: Whatever ``fn`` raised, re-raised in the caller.
        """
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, or None")
        check_key(key)
        check_priority(priority)
        if isinstance(memory, bool) or not isinstance(memory, int):
            raise TypeError(f"memory must be an int (bytes), not {type(memory).__name__}")
        if memory < 0:
            raise ValueError("memory must be a number of bytes, at least 0")
        if cost is not None and not 0 < cost < math.inf:
            raise ValueError("cost must be a positive number of seconds, or None")
        context = None if self._executor is not None else contextvars.copy_context()
        hidden = _Hidden(args)
        del args  # from here on only the hidden copy exists in this frame

        def admit(deliver: _waiting.Deliver) -> _Call[T]:
            deadline = None if timeout is None else time.monotonic() + timeout
            call = _Call(
                fn, hidden, deliver, deadline, context, key=key, priority=priority, memory=memory
            )
            self._submit(call, cost)
            return call

        try:
            result: T = await _waiting.wait(admit, self._abandon, timeout)
        finally:
            hidden.values = ()  # answered, refused or abandoned: let the password go
        return result

    def statistics(self) -> PoolStatistics:
        """Return a consistent snapshot of the pool's counters (and the host's slots)."""
        host_held, memory_in_use = self._budget.held(self._running)
        with self._cond:
            mean = self._service_total / self._completed if self._completed else None
            return PoolStatistics(
                max_workers=self._max_workers,
                threads=len(self._threads),
                running=self._running,
                queued=len(self._queue),
                admitted=self._admitted,
                completed=self._completed,
                failed=self._failed,
                rejected=self._rejected,
                cancelled=self._cancelled,
                expired=self._expired,
                abandoned=self._abandoned,
                mean_service_time=mean,
                estimated_wait=self._estimate_wait(len(self._queue)),
                shed=self._shed,
                active_keys=self._queue.active_keys,
                refusals={reason: self._refusals[reason] for reason in REFUSAL_REASONS},
                host_limit=self.host_limit,
                host_held=host_held,
                max_memory=self.memory_budget,
                memory_in_use=memory_in_use,
            )

    def add_listener(self, callback: Callable[[str, float], None]) -> Callable[[], None]:
        """Call ``callback(event, seconds)`` as calls end; return a function that removes it.

        Events: ``"completed"`` and ``"failed"`` (seconds = service time),
        ``"abandoned"`` (service time of a call whose caller had gone),
        ``"rejected"`` (seconds = the estimated wait that was refused),
        ``"cancelled"`` and ``"expired"`` (seconds = 0.0 for a call that never
        ran). Metrics exporters use this for histograms. The callback runs on
        a worker thread or the caller's thread, outside the pool's lock, and
        before the caller is answered, so a call is in the metrics by the
        time its caller has the result; it must be quick and thread-safe, and
        its exceptions are logged and ignored. It never receives arguments or
        results.
        """
        with self._cond:
            self._listeners = (*self._listeners, callback)

        def remove() -> None:
            with self._cond:
                self._listeners = tuple(cb for cb in self._listeners if cb is not callback)

        return remove

    def _emit(self, event: str, seconds: float) -> None:
        for callback in self._listeners:
            try:
                callback(event, seconds)
            except Exception:  # noqa: BLE001, PERF203 - a broken exporter must not break hashing
                _log.exception("loopsafe pool listener %r failed", callback)

    def close(self, *, cancel_queued: bool = True) -> None:
        """Stop admitting calls; answer every queued call with `PoolClosed`.

        Calls already running finish and are answered; worker threads then
        exit. Does not block; use `aclose` to wait for the running calls.
        Idempotent.

        Args:
            cancel_queued: If False, queued calls still run (the pool drains)
                and only new calls are refused.
        """
        with self._cond:
            self._closed = True
            dropped = self._queue.clear() if cancel_queued else []
            self._budget.set_queued(len(self._queue))
            for call in dropped:
                call.state = _CANCELLED
            self._cancelled += len(dropped)
            self._cond.notify_all()
            drained_now = not self._threads and not self._queue
            waiters = self._take_drain_waiters() if drained_now else []
        error = PoolClosed("the password hashing pool was closed before this call could run")
        for call in dropped:
            call.deliver(False, error)
            self._emit("cancelled", 0.0)
        for deliver in waiters:
            deliver(True, None)

    async def aclose(self) -> None:
        """Close the pool and wait until calls already running have finished."""

        def register(deliver: _waiting.Deliver) -> None:
            with self._cond:
                if self._threads:
                    self._drained.append(deliver)
                    return
            deliver(True, None)

        self.close()
        await _waiting.wait(register, lambda _call, _expired: None, None)

    async def __aenter__(self) -> Self:
        """Use the pool for the length of an ``async with`` block."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the pool and wait for running calls."""
        await self.aclose()

    # -- internals, all under self._cond unless said otherwise ----------------------

    def _submit(self, call: _Call[Any], cost: float | None) -> None:
        with self._cond:
            victims, rejected = self._admission(
                call.key, call.priority, shed=True, memory=call.memory, cost=cost
            )
            if rejected is None:
                self._enqueue(call)
        for victim, refusal in victims:
            self._emit("shed", refusal.estimated_wait)
            victim.deliver(False, refusal)
        if rejected is not None:
            self._emit("rejected", rejected.estimated_wait)
            raise rejected

    def _enqueue(self, call: _Call[Any]) -> None:
        """Queue an admitted call and make sure a worker will take it (under the lock)."""
        self._queue.push(call, call.key, call.priority)
        self._admitted += 1
        self._budget.set_queued(len(self._queue))
        if len(self._queue) > self._idle and len(self._threads) < self._max_workers:
            self._start_worker()
        else:
            self._cond.notify()

    def _start_worker(self) -> None:
        self._thread_seq += 1
        thread = threading.Thread(
            target=self._work,
            name=f"{self._name}-worker-{self._thread_seq}",
            # Daemon: a hash in flight must never hold interpreter exit hostage.
            # atexit closes every pool first, so queued callers are answered.
            daemon=True,
        )
        self._threads.add(thread)
        thread.start()

    def _abandon(self, call: _Call[Any], expired: bool) -> None:
        """The caller stopped waiting (called from the caller's thread)."""
        with self._cond:
            was_queued = call.state == _QUEUED
            if was_queued:
                self._queue.remove(call, call.key, call.priority)
                self._budget.set_queued(len(self._queue))
                if expired:
                    self._expired += 1
                else:
                    self._cancelled += 1
                call.state = _EXPIRED if expired else _CANCELLED
            elif call.state == _RUNNING:
                # Counted by the worker when it finishes, together with `abandoned`.
                call.state = _EXPIRED if expired else _CANCELLED
        if was_queued:
            self._emit("expired" if expired else "cancelled", 0.0)

    def _take_drain_waiters(self) -> list[_waiting.Deliver]:
        waiters, self._drained = self._drained, []
        return waiters

    def _after_fork_in_child(self) -> None:
        # The parent's calls belong to the parent's event loops: forget them.
        # The child's own workers start lazily on its first call.
        self._reset_after_fork()


_live_pools: weakref.WeakSet[HashPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_live_pools):
        pool._after_fork_in_child()  # noqa: SLF001 - module-private protocol


def _close_all_at_exit() -> None:
    for pool in list(_live_pools):
        pool.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
