"""The host-wide hashing budget: slots shared by every process on the host, held with file locks.

``uvicorn --workers 4`` and ``gunicorn -w 4`` run four processes, each with its
own pool; without a shared bound they run four pools' worth of hashes on the
same cores and the same memory. `HostSlots` is that shared bound: ``limit``
slot files in a runtime directory named by a *key*, and a hash runs only while
its worker holds one of them with ``flock``. Every process on the host that
uses the same key shares the same ``limit``.

Why file locks: the kernel releases a ``flock`` when the last descriptor of
its open file goes away, so a worker killed with SIGKILL in the middle of a
hash frees its slot at once (a POSIX semaphore would stay taken forever). Locks
belong to an open file *description*, so two threads of one process conflict
like two processes do, and a forked child that closes its inherited copies
(done here after every ``fork``) leaves the parent's slots held by the parent.

Each slot file holds, while held, the bytes of memory its hash declared
(8 bytes, little-endian), so a process can see the memory in use on the whole
host and keep the sum within ``max_memory``. Taking a slot and writing its
bytes happen under a short ``gate`` lock, so two processes never both fit
into the last free bytes. Each process also claims a record in the
``demand`` file (holding ``proc-<i>`` with ``flock`` for its life) and keeps
there how many of its calls wait for a slot, so admission in one process sees
its siblings' queues, and a dead process's record stops counting when the
kernel drops its lock. The ``service`` file holds the latest service-time
estimate of any process with the key: a pool that starts cold (a recycled
worker) takes it as its prior.

Where the files live, and how they are made: `loopsafe._runtime_dir`. An
unwritable directory raises `HostBudgetUnavailable` when the budget is made:
the bound is never silently dropped.

When the directory fails later (removed, read-only, full: docs/faults.md),
no worker waits on it or dies of it: the process logs one warning (logger
``loopsafe.host``) and keeps the same bound on its own, ``limit`` hashes and
``max_memory`` bytes in this process (the *per-process bound*). Every second a
worker looking for a slot tries the directory again, re-making it as at start
if it was removed; once it works, it logs so and takes host slots again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import struct
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from loopsafe import _runtime_dir as _files
from loopsafe._runtime_dir import ENV_RUNTIME_DIR, default_host_key, runtime_directory
from loopsafe.exceptions import HostBudgetUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENV_RUNTIME_DIR",
    "HostSlots",
    "HostUsage",
    "default_host_key",
    "runtime_directory",
]

_BYTES: Final = struct.Struct("<Q")
_SECONDS: Final = struct.Struct("<dd")  # (seconds, wall-clock time it was published)

#: How old a published service time may be and still serve a cold pool, in
#: seconds: a worker recycled while its siblings run finds a fresh one; an
#: estimate left by yesterday's deployment (other parameters?) is ignored.
_SERVICE_FRESH: Final = 300.0

#: How often a worker waiting for a slot looks again, in seconds (jittered).
#: Over a hash of 0.1-1 s, a slot left idle for half of this costs < 1 %.
_POLL: Final = 0.002
#: How often a thread queued behind its process's poller checks ``give_up``.
_TURN_CHECK: Final = 0.02

#: Processes per key that can publish their demand (more still share the slots).
_MAX_PROCESSES: Final = _files.MAX_PROCESSES

#: How often the set of live processes' demand records is re-read, in seconds.
_LIVENESS_TTL: Final = 0.5

_RETRY: Final = 1.0  # how often a budget whose directory failed tries it again, in seconds

_log = logging.getLogger("loopsafe.host")


@dataclass(frozen=True, slots=True)
class HostUsage:
    """What the host's slots hold right now.

    Attributes:
        held: Slots held by any process with the key.
        held_here: Of those, the ones this process holds.
        memory: Bytes declared by the hashes holding slots, host-wide.
    """

    held: int
    held_here: int
    memory: int


class HostSlots:
    """``limit`` slots shared by every process on the host that uses ``key``.

    `acquire` blocks a worker thread until a slot (and, with ``max_memory``,
    enough memory) is free; `release` frees it. `usage` reads the host's
    demand without taking anything. Safe to use from many threads; usable in
    a forked child (its inherited descriptors are closed, its parent's slots
    stay with the parent) and from spawned processes (each opens its own).

    Args:
        limit: Slots on the host: hashes that may run at once across processes.
        key: Which budget to share; default `default_host_key`.
        directory: Parent directory of the budget's files; default: see the
            module docstring.

    Raises:
        TypeError: ``limit`` is not an int or ``key`` not a str.
        ValueError: ``limit`` is below 1 or ``key`` has other characters.
        HostBudgetUnavailable: No file locks here (Windows), or the
            directory cannot be made or written.
    """

    def __init__(
        self,
        limit: int,
        key: str | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        """Create (or join) the budget's files; descriptors open lazily per process."""
        self._limit = _files.check_host_limit(limit)
        self._key = default_host_key() if key is None else _files.check_host_key(key)
        if fcntl is None:  # pragma: no cover - Windows
            raise HostBudgetUnavailable("a host budget needs fcntl file locks (POSIX only)")
        self._path = runtime_directory(self._key, directory)
        try:
            for name in self._file_names():
                fd = _files.open_file(self._path / name)
                try:
                    _files.reserve(fd, _files.file_bytes(name))
                finally:
                    os.close(fd)
        except OSError as exc:
            raise HostBudgetUnavailable(
                f"cannot create the host budget's files in {self._path}: {exc.strerror}; "
                f"set {ENV_RUNTIME_DIR} to a writable directory"
            ) from exc
        self._reset()
        _live.add(self)

    def _slot_names(self) -> list[str]:
        return [f"slot-{index}" for index in range(self._limit)]

    def _file_names(self) -> list[str]:
        return [*self._slot_names(), "gate", "service", "demand"]

    def _reset(self) -> None:
        """Forget descriptors and slots; in a forked child they are the parent's."""
        self._pid = os.getpid()
        self._lock = threading.Lock()  # guards the descriptors and _mine
        self._turn = threading.Lock()  # one poller per process
        self._fds: dict[str, int] = {}
        self._mine: dict[int, int] = {}  # slot -> declared bytes
        # `usage` has descriptors and a lock of its own: it runs on event loops,
        # which must never wait for a (niced, maybe preempted) worker thread.
        self._probe_lock = threading.Lock()
        self._probe_fds: dict[str, int] = {}
        self._record: int | None = None  # this process's index in the demand file
        self._record_fd: int | None = None
        self._live_records: tuple[float, tuple[int, ...]] = (-1.0, ())
        self._held_fds: dict[int, int] = {}  # host slot -> the descriptor holding its lock
        self._stale: set[int] = set()  # held descriptors of a directory that was replaced
        # Whether the directory works: None, or why not (then slots are this process's own).
        self._state_lock = threading.Lock()
        self._down: str | None = None
        self._retry_at = 0.0
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the directory
        self._checked = -1.0

    def _after_fork_in_child(self) -> None:
        # Close, never unlock: an unlock would release the parent's lock too,
        # as a flock belongs to the open file description both share.
        inherited = [*self._fds.values(), *self._probe_fds.values(), *self._stale]
        if self._record_fd is not None:
            inherited.append(self._record_fd)
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._reset()

    # -- configuration ------------------------------------------------------------

    @property
    def limit(self) -> int:
        """Slots on the host."""
        return self._limit

    @property
    def key(self) -> str:
        """The budget's key."""
        return self._key

    @property
    def path(self) -> Path:
        """The directory of the budget's files."""
        return self._path

    def __repr__(self) -> str:
        """Show the key, the limit and the slots this process holds."""
        return f"<HostSlots key={self._key!r} limit={self._limit} held_here={len(self._mine)}>"

    # -- slots ----------------------------------------------------------------------

    def _fd(self, name: str, fds: dict[str, int] | None = None) -> int:
        """This process's descriptor of one of the budget's files (under the matching lock)."""
        if self._pid != os.getpid():  # pragma: no cover - a fork the hook did not see
            self._after_fork_in_child()
        if fds is None:
            fds = self._fds
        fd = fds.get(name)
        if fd is None:
            try:
                fd = fds[name] = _files.open_file(self._path / name)
            except OSError as exc:
                raise HostBudgetUnavailable(
                    f"the host budget's file {self._path / name} is gone or unreadable: "
                    f"{exc.strerror}"
                ) from exc
        return fd

    def _scan(self, memory: int, max_memory: int | None) -> int | None:
        """Count held slots and bytes, and hold a free slot if the memory fits; return it.

        Runs under self._lock and the gate, so no other process takes a slot
        or writes its bytes meanwhile.
        """
        used = sum(self._mine.values())
        held = len(self._mine)
        free: int | None = None
        try:
            for index in range(self._limit):
                if index in self._mine:
                    continue
                fd = self._fd(f"slot-{index}")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    held += 1
                    used += _declared(fd)
                    continue
                if free is None:
                    free = index  # keep holding it until the whole host is counted
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            if free is None:
                return None
            # A hash larger than the whole budget runs alone rather than never.
            fits = max_memory is None or used + memory <= max_memory or held == 0
            fd = self._fds[f"slot-{free}"]
            if fits:
                os.pwrite(fd, _BYTES.pack(memory), 0)
                self._mine[free] = memory
                self._held_fds[free] = fd
                return free
        except BaseException:
            if free is not None and free not in self._mine:
                fcntl.flock(self._fds[f"slot-{free}"], fcntl.LOCK_UN)  # never keep it by mistake
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None

    def try_acquire(self, memory: int = 0, *, max_memory: int | None = None) -> int | None:
        """Take a free slot now if there is one (and the memory fits); return it, or None.

        Runs under the host's gate (held by anyone for microseconds), so no
        other process takes a slot or writes its bytes meanwhile. Worker
        threads only: it may wait for the gate.
        """
        with self._lock:
            if self._usable():
                try:
                    gate = self._fd("gate")
                    fcntl.flock(gate, fcntl.LOCK_EX)
                    try:
                        return self._scan(memory, max_memory)
                    finally:
                        fcntl.flock(gate, fcntl.LOCK_UN)
                except OSError as exc:
                    self._fail(exc)
            return self._take_local(memory, max_memory)

    def acquire(
        self,
        memory: int = 0,
        *,
        max_memory: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> int | None:
        """Block until a slot is free and ``memory`` fits; return the slot.

        Call it from a worker thread, never from an event loop. One thread per
        process polls the host (every ~2 ms); the others wait their turn.

        Args:
            memory: Bytes the hash will use, counted against ``max_memory``.
            max_memory: Most bytes all hashes holding slots may declare together.
            give_up: Checked while waiting; when it returns True, stop and return None.

        Returns:
            The slot's number (pass it to `release`), or None if ``give_up`` said so.
        """
        while not self._turn.acquire(timeout=_TURN_CHECK):
            if give_up is not None and give_up():
                return None
        try:
            while True:
                slot = self.try_acquire(memory, max_memory=max_memory)
                if slot is not None:
                    return slot
                if give_up is not None and give_up():
                    return None
                # Jitter, so the pollers of several processes take turns.
                time.sleep(_POLL * (0.5 + random.random()))
        finally:
            self._turn.release()

    def release(self, slot: int) -> None:
        """Free a slot taken by `acquire` in this process."""
        with self._lock:
            if self._pid != os.getpid() or self._mine.pop(slot, None) is None:
                return  # a forked child's copy of its parent's slot: not ours to free
            fd = self._held_fds.pop(slot, None)
            if fd is None:
                return  # a slot of the per-process bound: nothing on disk
            if fd in self._stale:  # its directory was replaced meanwhile
                self._stale.discard(fd)
                os.close(fd)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)

    # -- when the directory fails: the per-process bound ----------------------------------

    @property
    def degraded(self) -> str | None:
        """Why the host's files cannot be used now (slots are per process meanwhile), or None."""
        return self._down

    def _fail(self, exc: BaseException | str) -> None:
        """Fall back to the per-process bound; log once per failure (any thread, any lock)."""
        reason = exc if isinstance(exc, str) else _files.describe_failure(exc)
        with self._state_lock:
            first = self._down is None
            self._down = reason
            self._retry_at = time.monotonic() + _RETRY
        if first:
            _log.warning(
                "loopsafe host budget %r: its directory %s failed (%s); each process now keeps "
                "to %d hashes at once and its own memory budget on its own, until the "
                "directory works again (tried every %g s)",
                self._key,
                self._path,
                reason,
                self._limit,
                _RETRY,
            )

    def _usable(self) -> bool:
        """Whether to use the host's files now; tries to come back when due (under self._lock)."""
        now = time.monotonic()
        if self._down is None:
            if now - self._checked > _LIVENESS_TTL:
                self._checked = now
                try:
                    identity = _files.identity(self._path)
                except OSError as exc:
                    self._fail(exc)
                    return False
                self._identity = self._identity or identity  # the first check records it
                if identity != self._identity:
                    self._fail("it was removed and made again: its locks are not ours")
                    return False
            return True
        if now < self._retry_at:
            return False
        try:
            _files.private_directory(self._path)
            identity = _files.identity(self._path)
            if identity != self._identity:
                self._forget_files()
                self._identity = identity
            for name in self._file_names():
                _files.reserve(self._fd(name), _files.file_bytes(name))
        except OSError as exc:
            with self._state_lock:
                self._down = _files.describe_failure(exc)
                self._retry_at = now + _RETRY
            return False
        with self._state_lock:
            self._down = None
        self._checked = now
        _log.info("loopsafe host budget %r: its directory %s works again", self._key, self._path)
        return True

    def _forget_files(self) -> None:
        """Drop the descriptors of a directory that is gone; held slots close when released."""
        held = set(self._held_fds.values())
        with self._probe_lock:
            fds = [*self._fds.values(), *self._probe_fds.values()]
            if self._record_fd is not None:
                fds.append(self._record_fd)
            self._fds, self._probe_fds = {}, {}
            self._record = self._record_fd = None
            self._live_records = (-1.0, ())
        for fd in fds:
            if fd in held:
                self._stale.add(fd)
            else:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _take_local(self, memory: int, max_memory: int | None) -> int | None:
        """A slot of the per-process bound (numbered from ``limit`` up), or None."""
        if len(self._mine) >= self._limit:
            return None
        if max_memory is not None and self._mine and sum(self._mine.values()) + memory > max_memory:
            return None
        slot = next(i for i in range(self._limit, 2 * self._limit) if i not in self._mine)
        self._mine[slot] = memory
        return slot

    def _local_usage(self) -> HostUsage:
        return HostUsage(len(self._mine), len(self._mine), sum(self._mine.values()))

    def usage(self) -> HostUsage:
        """Count the slots held and the bytes declared, host-wide, without taking any.

        Never waits for the gate or for this process's worker threads, so an
        event loop may call it (admission does): each slot is tried and let go
        at once with descriptors of its own. A poller that meets a slot while
        it is being tried sees it taken and looks again a moment later.
        """
        if self._down is not None:
            return self._local_usage()
        held_here = len(self._mine)
        held = 0
        used = 0
        try:
            with self._probe_lock:
                for index in range(self._limit):
                    fd = self._fd(f"slot-{index}", self._probe_fds)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        held += 1
                        used += _declared(fd)
                    else:
                        fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            self._fail(exc)
            return self._local_usage()
        return HostUsage(max(held, held_here), held_here, used)

    # -- every process's demand --------------------------------------------------------

    def _claim_record(self) -> int | None:
        """Hold a ``proc-<i>`` file for this process's life; return i (None if all are taken)."""
        if self._record is not None and self._pid == os.getpid():
            return self._record
        if self._pid != os.getpid():  # pragma: no cover - a fork the hook did not see
            self._after_fork_in_child()
        for index in range(_MAX_PROCESSES):
            fd = _files.open_file(self._path / f"proc-{index}")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self._record, self._record_fd = index, fd
            with self._probe_lock:
                os.pwrite(self._fd("demand", self._probe_fds), _BYTES.pack(0), 8 * index)
            return index
        return None

    def publish_demand(self, waiting: int) -> None:
        """Record how many of this process's calls wait for a slot (queued or polling).

        Cheap (one ``pwrite``); the caller serializes calls (the pool does it
        under its lock).
        """
        if self._down is not None:
            return
        try:
            index = self._claim_record()
            if index is not None:
                os.pwrite(self._fd("demand", self._probe_fds), _BYTES.pack(waiting), 8 * index)
        except OSError as exc:
            self._fail(exc)

    def others_demand(self) -> int:
        """Return how many calls the *other* live processes with the key have waiting."""
        if self._down is not None:
            return 0
        try:
            return self._others_demand()
        except OSError as exc:
            self._fail(exc)
            return 0

    def _others_demand(self) -> int:
        now = time.monotonic()
        when, live = self._live_records
        mine = self._record
        with self._probe_lock:
            if now - when > _LIVENESS_TTL:
                found = []
                for index in range(_MAX_PROCESSES):
                    if index == mine:
                        continue
                    path = self._path / f"proc-{index}"
                    try:
                        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    except FileNotFoundError:
                        break  # records are claimed from 0 up: none beyond
                    try:
                        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        found.append(index)  # held: a live process
                    finally:
                        os.close(fd)  # also drops a lock we got on a dead record
                live = tuple(found)
                self._live_records = (now, live)
            if not live:
                return 0
            raw = os.pread(self._fd("demand", self._probe_fds), 8 * (max(live) + 1), 0)
        total = 0
        for index in live:
            chunk = raw[8 * index : 8 * index + 8]
            if len(chunk) == _BYTES.size:
                total += _BYTES.unpack(chunk)[0]
        return total

    # -- the shared service-time estimate ------------------------------------------------

    def publish_service_time(self, seconds: float) -> None:
        """Record a service-time estimate for pools that start cold on this host."""
        if self._down is not None:
            return
        try:
            with self._lock:
                os.pwrite(self._fd("service"), _SECONDS.pack(seconds, time.time()), 0)
        except OSError as exc:
            self._fail(exc)

    def service_time(self) -> float | None:
        """Return the latest estimate any process published in the last 5 minutes, or None."""
        if self._down is not None:
            return None
        try:
            with self._lock:
                raw = os.pread(self._fd("service"), _SECONDS.size, 0)
        except OSError as exc:
            self._fail(exc)
            return None
        if len(raw) != _SECONDS.size:
            return None
        seconds, published = _SECONDS.unpack(raw)
        fresh = 0 <= time.time() - published <= _SERVICE_FRESH
        return seconds if fresh and 0 < seconds < 3600 else None  # noqa: PLR2004 - sanity


def _declared(fd: int) -> int:
    """The bytes a held slot's hash declared (0 while its holder is writing them)."""
    raw = os.pread(fd, _BYTES.size, 0)
    return _BYTES.unpack(raw)[0] if len(raw) == _BYTES.size else 0


_live: weakref.WeakSet[HostSlots] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for slots in list(_live):
        slots._after_fork_in_child()  # noqa: SLF001 - module-private protocol


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
