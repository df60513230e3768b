"""The engine: run synchronous callables on dedicated threads, with admission control.

`HashPool` knows nothing about passwords. It is glue over parts that each
own their state (as trio's ``to_thread_run_sync`` is glue over a thread
cache and a ``CapacityLimiter``):

- the queue (`loopsafe._fair.FairQueue`): FIFO without client keys, fair across keys;
- the door (`loopsafe._admission.Admission`): admit, refuse or shed;
- the workers (`loopsafe._worker.Workers`): threads that run the calls;
- the service time (`loopsafe._service.ServiceTime`): one estimate for all;
- the budget (`loopsafe._budget.Budget`): host slots and memory;
- the ledger (`loopsafe._ledger.Ledger`): counts and tells the listeners.

This module holds what is left: the public API, a call's way in (`run`) and
out (a caller who stops waiting), closing, and the reset after ``fork``
(`loopsafe._life` calls it). How an async caller waits for a worker's answer
lives in `loopsafe._waiting`: here are only threads and locks, so one pool
serves any number of event loops, in any number of threads, at once.
"""

from __future__ import annotations

import contextvars
import sys
import time
from typing import TYPE_CHECKING, Any, TypeVar

from loopsafe import _limits, _waiting
from loopsafe._admission import Admission
from loopsafe._budget import Budget
from loopsafe._calls import _CANCELLED, _EXPIRED, _QUEUED, _RUNNING, _Call, _Hidden
from loopsafe._fair import FairQueue, Key, check_key, check_priority
from loopsafe._ledger import Ledger, Section
from loopsafe._life import LIVE
from loopsafe._service import Cost, ServiceTime, check_cost
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
from loopsafe._statistics import PoolStatistics
from loopsafe._worker import Workers
from loopsafe.exceptions import PoolClosed

if sys.version_info >= (3, 11):
    from typing import Self, TypeVarTuple, Unpack
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self, TypeVarTuple, Unpack

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

__all__ = ["HashPool"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


class HashPool:
    """A bounded, cancellation-aware pool for CPU-heavy calls, with admission control.

    The pool runs synchronous callables on its own worker threads (never the
    event loop's default executor, never asgiref's thread-sensitive thread) and
    lets the caller await the result from asyncio, uvloop or trio.

    Admission happens when a call arrives: if the queue already holds
    ``max_pending`` calls, or the estimated wait (service time x calls
    queued ahead / workers) would exceed ``max_queue_wait``, `run` raises
    `Overloaded` at once and nothing is queued. A server answers that with
    HTTP 503, which costs microseconds, instead of making every client wait
    past its own timeout.

    A fresh pool needs no start-up call: until it knows a service time it
    admits, and the moment it learns one (a caller's ``cost=`` estimator run
    on a worker, or the first call to finish) the calls it admitted meanwhile
    are judged again, and those that can no longer start within
    ``max_queue_wait`` are answered with `Overloaded` at once.

    Calls may carry a client ``key`` (see `run`): they are then served round
    robin across keys, and when the pool is full the key holding more than
    its fair share gives way first (`loopsafe._admission`). Without keys: one
    shared key, first come, first served.

    A call whose caller is cancelled or times out before it starts never runs;
    one already running finishes and its result is dropped, while the caller
    returns at once. Every other admitted call gets its result or exception.

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
        workers = _checked_workers(max_workers)
        self._follows_limits = False
        queue_wait = _checked_queue_wait(max_queue_wait)
        pending = _checked_pending(max_pending)
        nice = _checked_nice(nice)
        self._budget = Budget(
            _checked_host_limit(host_limit), host_key, _checked_max_memory(max_memory)
        )
        self._service = ServiceTime(self._budget.host)
        self._ledger = Ledger()
        self._name = name
        self._assemble(workers, queue_wait, pending, nice, executor)
        _live_pools.add(self)
        if max_workers is None:
            self._follow_limits()

    def _assemble(
        self,
        max_workers: int,
        max_queue_wait: float | None,
        max_pending: int,
        nice: int,
        executor: Executor | None,
    ) -> None:
        """Build the parts that hold calls in flight (again in a forked child: those are gone)."""
        self._section = Section(self._ledger)
        self._queue: FairQueue[_Call[Any]] = FairQueue()
        self._workers = Workers(
            self._section,
            self._queue,
            self._budget,
            self._service,
            self._ledger,
            rejudge=lambda: self._admission.rejudge(),  # noqa: PLW0108 - the door comes next
            max_workers=max_workers,
            nice=nice,
            executor=executor,
            name=self._name,
        )
        self._admission = Admission(
            self._queue,
            self._workers,
            self._budget,
            self._service,
            self._ledger,
            max_queue_wait=max_queue_wait,
            max_pending=max_pending,
        )

    # -- configuration, read-only -------------------------------------------------

    @property
    def max_workers(self) -> int:
        """Calls that may run at once; writable like anyio's ``total_tokens`` (None: the CPUs).

        Raising it lets queued calls start at once; lowering it lets the calls
        running now finish and starts no new one until fewer than the new bound run.
        """
        return self._workers.max_workers

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
        if self._follows_limits and not self.closed:
            self._resize(limits.cpus, only_if_following=True)

    def _resize(self, value: int, *, only_if_following: bool = False) -> None:
        with self._section:
            if only_if_following and not self._follows_limits:
                return
            self._workers.resize(value)

    @property
    def max_queue_wait(self) -> float | None:
        """Longest estimated queue wait at which a call is admitted, in seconds; writable."""
        return self._admission.max_queue_wait

    @max_queue_wait.setter
    def max_queue_wait(self, value: float | None) -> None:
        value = _checked_queue_wait(value)
        with self._section:
            self._admission.max_queue_wait = value

    @property
    def max_pending(self) -> int:
        """Most calls that may wait in the queue at once; writable (calls queued stay)."""
        return self._admission.max_pending

    @max_pending.setter
    def max_pending(self, value: int) -> None:
        value = _checked_pending(value)
        with self._section:
            self._admission.max_pending = value

    @property
    def nice(self) -> int:
        """How much the worker threads' nice value is raised."""
        return self._workers.nice

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
        return self._workers.executor is not None

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._workers.closed

    def __repr__(self) -> str:
        """Show the configuration and the live counters (never any call's arguments)."""
        return (
            f"<HashPool {self._name!r} max_workers={self.max_workers} "
            f"max_queue_wait={self.max_queue_wait} max_pending={self.max_pending} "
            f"nice={self.nice} host_limit={self.host_limit} max_memory={self.memory_budget} "
            f"running={self._workers.running} queued={len(self._queue)}"
            f"{' closed' if self.closed else ''}>"
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
        cost: Cost = None,
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
            cost: Seconds ``fn`` is expected to keep a worker busy, or a
                callable that measures them (cheaply: a scaled-down run). Only
                a cold pool (no call finished yet) uses it: seconds are the
                service time admission assumes at once; a callable is run
                once, on a worker thread before its first call, and the calls
                admitted meanwhile are judged again by its answer. Without
                any, the first call to finish teaches the pool. `PasswordHash`
                passes `Hasher.estimated_seconds` (or its cached answer).

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
        check_cost(cost)
        context = None if self.uses_executor else contextvars.copy_context()
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

    def check_admission(self, *, key: Key = None, priority: int = 0, count: bool = True) -> None:
        """Raise `Overloaded` (or `PoolClosed`) if a call arriving now would be refused.

        Call it before other work for a request (the user's row). It admits and
        pushes out nothing; its refusal is the client's 503, so it counts like any
        (``rejected``, the event, the metrics) unless ``count=False`` (a pure look).
        A call admitted only by pushing out another key's queued call passes.
        """
        check_key(key)
        check_priority(priority)
        if not isinstance(count, bool):
            raise TypeError(f"count must be a bool, not {type(count).__name__}")
        with self._section:
            self._check_open()
            refused = self._admission.dry_run(key, priority, count=count)
        if refused is not None:
            raise refused

    def statistics(self) -> PoolStatistics:
        """Return a consistent snapshot of the pool's counters (and the host's slots)."""
        workers, ledger = self._workers, self._ledger
        host_held, memory_in_use = self._budget.held(workers.running)
        with self._section:
            return PoolStatistics(
                max_workers=workers.max_workers,
                threads=workers.threads,
                running=workers.running,
                queued=len(self._queue),
                admitted=ledger.admitted,
                completed=ledger.completed,
                failed=ledger.failed,
                rejected=ledger.rejected,
                cancelled=ledger.cancelled,
                expired=ledger.expired,
                abandoned=ledger.abandoned,
                mean_service_time=self._service.ewma,
                estimated_wait=self._admission.estimate_wait(len(self._queue)),
                shed=ledger.shed,
                active_keys=self._queue.active_keys,
                refusals=ledger.refusal_counts(),
                host_limit=self.host_limit,
                host_held=host_held,
                max_memory=self.memory_budget,
                memory_in_use=memory_in_use,
                service_seconds=ledger.service_seconds,
            )

    def add_listener(self, callback: Callable[[str, float], None]) -> Callable[[], None]:
        """Call ``callback(event, seconds)`` as calls end; return a function that removes it.

        Events (`loopsafe._ledger.EVENTS`), and what ``seconds`` is:

        - ``"completed"`` and ``"failed"``: the call ran (it returned or
          raised); its service time.
        - ``"abandoned"``: the call ran to the end for a caller that had
          gone; its service time.
        - ``"rejected"``: refused at the door with `Overloaded`; the
          estimated wait that was refused.
        - ``"shed"``: admitted, then pushed out of the queue with
          `Overloaded` before it ran (a fairer claim, a higher priority, or
          a cold pool judging its queue again once it knows a service time);
          the estimated wait.
        - ``"cancelled"`` and ``"expired"``: the caller was cancelled (or
          the pool closed), or its deadline passed, before the call ran; 0.0.

        Metrics exporters use this for histograms. The callback runs on a
        worker thread or the caller's thread, outside the pool's lock, and
        before the caller is answered, so a call is in the metrics by the
        time its caller has the result; it must be quick and thread-safe, and
        its exceptions are logged and ignored. It never receives arguments or
        results.
        """
        with self._section:
            self._ledger.add_listener(callback)

        def remove() -> None:
            with self._section:
                self._ledger.remove_listener(callback)

        return remove

    def close(self, *, cancel_queued: bool = True) -> None:
        """Stop admitting calls; answer every queued call with `PoolClosed`.

        Calls already running finish and are answered; worker threads then
        exit. Does not block; use `aclose` to wait for the running calls.
        Idempotent.

        Args:
            cancel_queued: If False, queued calls still run (the pool drains)
                and only new calls are refused.
        """
        with self._section:
            dropped = self._queue.clear() if cancel_queued else []
            self._budget.set_queued(len(self._queue))
            for call in dropped:
                call.state = _CANCELLED
                self._ledger.never_ran(expired=False)
            waiters = self._workers.close()
        error = PoolClosed("the password hashing pool was closed before this call could run")
        for call in dropped:
            call.deliver(False, error)
        for deliver in waiters:
            deliver(True, None)

    async def aclose(self) -> None:
        """Close the pool and wait until calls already running have finished."""

        def register(deliver: _waiting.Deliver) -> None:
            with self._section:
                if self._workers.on_drained(deliver):
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

    # -- a call's way in and out ------------------------------------------------------

    def _check_open(self) -> None:
        if self._workers.closed:
            raise PoolClosed("the password hashing pool is closed")

    def _submit(self, call: _Call[Any], cost: Cost) -> None:
        with self._section:
            self._check_open()
            victims, refused = self._admission.decide(
                call.key, call.priority, memory=call.memory, cost=cost
            )
            if refused is None:
                self._queue.push(call, call.key, call.priority)
                self._ledger.admit()
                self._workers.wake()
            self._budget.set_queued(len(self._queue))
        for victim, refusal in victims:
            victim.deliver(False, refusal)
        if refused is not None:
            raise refused

    def _abandon(self, call: _Call[Any], expired: bool) -> None:
        """The caller stopped waiting (called from the caller's thread)."""
        with self._section:
            if call.state == _QUEUED:
                self._queue.remove(call, call.key, call.priority)
                self._budget.set_queued(len(self._queue))
                call.state = _EXPIRED if expired else _CANCELLED
                self._ledger.never_ran(expired=expired)
            elif call.state == _RUNNING:
                # Recorded by the worker when it finishes, as `abandoned`.
                call.state = _EXPIRED if expired else _CANCELLED

    def _after_fork_in_child(self) -> None:
        # The parent's calls belong to the parent's event loops: forget them.
        # The child's own workers start lazily on its first call.
        workers, admission = self._workers, self._admission
        self._ledger.reset()
        self._budget.reset_after_fork()
        self._service.reset_after_fork()
        self._assemble(
            workers.max_workers,
            admission.max_queue_wait,
            admission.max_pending,
            workers.nice,
            workers.executor,
        )
        if workers.closed:
            with self._section:
                self._workers.close()


#: Every pool alive in this process (`loopsafe._life`: fork and exit).
_live_pools = LIVE
