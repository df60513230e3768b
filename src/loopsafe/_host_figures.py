"""Host-wide figures: every worker process publishes its own in a file; any of them sums the host's.

``gunicorn -w 4`` and ``uvicorn --workers 4`` run four processes, each with its
own pools and counters, and a scrape of ``/metrics`` reaches one of them. So
each process keeps a *record* file (``rec-<pid>-<token>``) in a runtime
directory shared by its siblings and holds it with ``flock`` for its whole
life; it writes its latest figures there (a small JSON text behind a sequence
number, so a reader never takes a half-written record). A reader sums:

- **counters** (and histogram buckets) over every process, live or exited:
  the record of a process whose lock the kernel dropped (it exited, or was
  killed) is folded into an ``exited`` file and removed, so its counts stay
  and the directory stays small (what prometheus_client's multi-process mode
  does with its per-pid files);
- **gauges** over the live processes only, as a sum (``s``: calls running,
  threads...) or a maximum (``m``: the worst loop lag, the longest estimated
  wait, figures that are host-wide already).

Reading and folding happen under an exclusive ``gate`` lock, so two readers
never fold one record twice. A process that finds no live sibling when it
claims its record starts a new run: what earlier runs left is removed, so a
restarted server starts from zero like a single process does (a reset that
Prometheus' ``rate()`` handles), and two runs of one program from the same
shell do not add up.

The directory: ``runtime_directory`` (see `loopsafe._runtime_dir`) of a key made of
the user, the program's name and a digest of its parent process id, command
line and working directory; the workers of one server share it (they share
their parent), two servers do not. ``LOOPSAFE_METRICS_KEY`` overrides it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import struct
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from loopsafe._runtime_dir import check_host_key, default_host_key, runtime_directory
from loopsafe.exceptions import HostBudgetUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["ENV_METRICS_KEY", "Figures", "HostFigures", "default_metrics_key", "merge"]

#: Environment variable naming the directory key that a server's processes share.
ENV_METRICS_KEY: Final = "LOOPSAFE_METRICS_KEY"

#: One process's figures: ``{"pools": {label: {"c": {...}, "s": {...}, "m": {...},
#: "hist": [bucket counts..., sum]}}, "m": {...}}`` (JSON-able).
Figures = dict[str, Any]

_HEADER: Final = struct.Struct("<QQ")  # (sequence number, length of the JSON that follows)
_SEQ: Final = struct.Struct("<Q")
#: A burst of events publishes at most this often (seconds); a quiet pool at once.
_MIN_INTERVAL: Final = 0.01
#: How often a process refreshes its record without events (gauges move on admission too).
_REFRESH: Final = 1.0

_log = logging.getLogger("loopsafe.metrics")


def default_metrics_key() -> str:
    """Return the key shared by the workers of this server and by no other program.

    ``<uid>-<program>-<digest>``: the digest covers the parent process id, the
    command line and the working directory, which the workers of one
    ``gunicorn``/``uvicorn --workers`` share (a spawned worker sees its
    parent's ``sys.argv``). ``LOOPSAFE_METRICS_KEY`` overrides it.
    """
    explicit = os.environ.get(ENV_METRICS_KEY)
    if explicit:
        return check_host_key(explicit)
    parts = f"{os.getppid()}\0{chr(0).join(sys.argv)}\0{Path.cwd()}"
    digest = hashlib.sha256(parts.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"figures-{default_host_key()[:70]}-{digest}"


def _add(into: dict[str, float], values: dict[str, float]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, 0.0) + value


def _add_histogram(into: dict[str, Any], pool: str, hist: list[float] | None) -> None:
    if not hist:
        return
    mine = into.setdefault("hist", None)
    if mine is None:
        into["hist"] = list(hist)
    elif len(mine) == len(hist):  # other buckets: another version; leave it out
        into["hist"] = [a + b for a, b in zip(mine, hist, strict=True)]
    else:
        _log.debug("histogram of pool %r has other buckets in another process", pool)


def merge(own: Figures, live: list[Figures], exited: Figures) -> Figures:
    """Sum ``own`` with the other live processes' figures and the exited ones' counts.

    Counters and histograms add up over all three; ``s`` gauges add up over
    the live processes; ``m`` gauges take the live processes' maximum.
    """
    pools: dict[str, dict[str, Any]] = {}
    process_max: dict[str, float] = dict(own.get("m", {}))
    for name, figures in own.get("pools", {}).items():
        pools[name] = {
            "c": dict(figures.get("c", {})),
            "s": dict(figures.get("s", {})),
            "m": dict(figures.get("m", {})),
            "hist": list(figures["hist"]) if figures.get("hist") else None,
        }
    for other in live:
        for stat, value in other.get("m", {}).items():
            process_max[stat] = max(process_max.get(stat, value), value)
        for name, figures in other.get("pools", {}).items():
            if name not in pools:
                continue  # a pool this process does not export
            mine = pools[name]
            _add(mine["c"], figures.get("c", {}))
            _add(mine["s"], figures.get("s", {}))
            for stat, value in figures.get("m", {}).items():
                mine["m"][stat] = max(mine["m"].get(stat, value), value)
            _add_histogram(mine, name, figures.get("hist"))
    for name, figures in exited.get("pools", {}).items():
        if name in pools:
            _add(pools[name]["c"], figures.get("c", {}))
            _add_histogram(pools[name], name, figures.get("hist"))
    return {"pools": pools, "m": process_max}


def _fold(exited: Figures, dead: Figures) -> None:
    """Add a dead process's counters and histograms to ``exited`` (its gauges go)."""
    pools = exited.setdefault("pools", {})
    for name, figures in dead.get("pools", {}).items():
        mine = pools.setdefault(name, {"c": {}, "hist": None})
        _add(mine["c"], figures.get("c", {}))
        _add_histogram(mine, name, figures.get("hist"))


def _read_record(fd: int) -> Figures | None:
    """Read a record written by `HostFigures.publish` (None if empty or never consistent)."""
    for attempt in range(200):
        head = os.pread(fd, _HEADER.size, 0)
        if len(head) < _HEADER.size:
            return None
        seq, length = _HEADER.unpack(head)
        if seq % 2 == 0:
            body = os.pread(fd, length, _HEADER.size)
            if os.pread(fd, _SEQ.size, 0) == _SEQ.pack(seq) and len(body) == length:
                try:
                    figures: Figures = json.loads(body)
                except ValueError:
                    return None
                return figures
        time.sleep(0 if attempt < 100 else 0.0005)  # noqa: PLR2004 - spin, then back off
    return None


class HostFigures:
    """This process's record in a server's shared directory, and the reader of its siblings'.

    Args:
        snapshot: Returns this process's figures now (called under no lock of ours
            but from any thread: event listeners, the refresher, a scrape).
        key: The directory key; default `default_metrics_key`, read in each process.
        directory: Parent directory; default: `loopsafe._runtime_dir.runtime_directory`'s.
        sink: Where to publish instead of a record file (prometheus_client's
            multi-process values); `host` then returns this process's figures.

    A directory that cannot be used (another user's, not writable, no
    ``fcntl``) is logged once: the figures are then this process's alone.
    """

    def __init__(
        self,
        snapshot: Callable[[], Figures],
        key: str | None = None,
        *,
        directory: str | os.PathLike[str] | None = None,
        sink: Callable[[Figures], None] | None = None,
    ) -> None:
        """Remember where to publish; nothing is opened before the first publication."""
        self._snapshot = snapshot
        self._sink = sink
        self._key = None if key is None else check_host_key(key)
        self._directory = directory
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid = -1
        self._path: Path | None = None
        self._fd: int | None = None
        self._name = ""
        self._seq = 0
        self._last = 0.0
        self._dirty = False
        self._broken = False
        self._closed = False
        self._cache: dict[str, Figures] = {}

    # -- this process's record --------------------------------------------------------

    def _claim(self) -> bool:
        """Open this process's record (once per process); False if the directory is unusable."""
        if self._pid == os.getpid():
            return self._fd is not None or self._sink is not None
        if self._fd is not None:  # a forked child: the parent's lock stays the parent's
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._pid, self._fd, self._seq, self._cache = os.getpid(), None, 0, {}
        if self._closed:
            return False
        if self._sink is not None:
            self._start_refresher()
            return True
        if self._broken or fcntl is None:
            return False
        try:
            path = runtime_directory(self._key or default_metrics_key(), self._directory)
            token = f"rec-{os.getpid()}-{secrets.token_hex(4)}"
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path / f".{token}", flags, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._gate(path):
                if not any(live for _, live, _ in self._records(path)):
                    self._forget_earlier_runs(path)
                (path / f".{token}").rename(path / token)
        except (OSError, HostBudgetUnavailable) as exc:
            self._broken = True
            _log.warning("loopsafe metrics are this process's only: %s", exc)
            return False
        self._path, self._fd, self._name = path, fd, token
        self._start_refresher()
        return True

    def _start_refresher(self) -> None:
        threading.Thread(target=self._refresh_loop, name="loopsafe-figures", daemon=True).start()

    def publish(self, figures: Figures | None = None) -> None:
        """Write this process's figures now (``figures``, or a fresh snapshot)."""
        with self._lock:
            if not self._claim():
                return
            self._dirty = False
            self._last = time.monotonic()
            if figures is None:
                figures = self._snapshot()
            if self._sink is not None:
                self._sink(figures)
                return
            if self._fd is None:
                return
            body = json.dumps(figures, separators=(",", ":")).encode()
            self._seq += 1
            os.pwrite(self._fd, _SEQ.pack(self._seq), 0)  # odd: being written
            os.pwrite(self._fd, _SEQ.pack(len(body)) + body, _SEQ.size)
            self._seq += 1
            os.pwrite(self._fd, _SEQ.pack(self._seq), 0)

    def poke(self) -> None:
        """An event happened: publish now, or within 10 ms when events come faster."""
        if time.monotonic() - self._last >= _MIN_INTERVAL and not self._lock.locked():
            self.publish()
        else:
            self._dirty = True
            self._wake.set()

    def _refresh_loop(self) -> None:
        ref = weakref.ref(self)
        pid = os.getpid()
        while True:
            me = ref()
            if me is None or me._closed or me._pid != pid:  # noqa: SLF001 - own instance
                return
            wake = me._wake  # noqa: SLF001
            del me
            woken = wake.wait(_REFRESH)
            wake.clear()
            if woken:
                time.sleep(_MIN_INTERVAL)
            me = ref()
            if me is None or me._closed:  # noqa: SLF001
                return
            try:
                me.publish()
            except Exception:  # noqa: BLE001 - metrics must never take a worker down
                _log.exception("loopsafe metrics could not be published")
            del me

    def close(self) -> None:
        """Remove this process's record (a collector taken away counts nothing more)."""
        with self._lock:
            self._closed = True
            if self._fd is not None and self._pid == os.getpid() and self._path is not None:
                with contextlib.suppress(OSError):
                    (self._path / self._name).unlink()
                os.close(self._fd)
            self._fd = None
            self._wake.set()

    # -- the host ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _gate(self, path: Path) -> Iterator[None]:
        fd = os.open(path / "gate", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _records(self, path: Path) -> list[tuple[str, bool, int]]:
        """(name, live?, open descriptor) of every other process's record; caller closes them."""
        found = []
        mine = f"rec-{os.getpid()}-"
        with os.scandir(path) as scan:
            entries = [entry for entry in scan if entry.name.startswith("rec-")]
        for entry in entries:
            if entry.name.startswith(mine):
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                found.append((entry.name, True, fd))
            else:
                found.append((entry.name, False, fd))
        return found

    def _forget_earlier_runs(self, path: Path) -> None:
        for name, live, fd in self._records(path):
            os.close(fd)
            if not live:
                (path / name).unlink(missing_ok=True)
        (path / "exited").unlink(missing_ok=True)

    def host(self) -> Figures:
        """Publish this process's figures and return the host's (its own alone if no directory)."""
        own = self._snapshot()
        self.publish(own)
        with self._lock:
            path = self._path if self._pid == os.getpid() and self._fd is not None else None
        if path is None:
            return merge(own, [], {})
        live: list[Figures] = []
        seen: set[str] = set()
        with self._gate(path):
            exited_path = path / "exited"
            try:
                exited: Figures = json.loads(exited_path.read_bytes() or b"{}")
            except FileNotFoundError:
                exited = {}
            folded = False
            for name, alive, fd in self._records(path):
                try:
                    figures = _read_record(fd) or self._cache.get(name)
                finally:
                    os.close(fd)
                if alive:
                    seen.add(name)
                    if figures is not None:
                        self._cache[name] = figures
                        live.append(figures)
                    continue
                if figures is not None:
                    _fold(exited, figures)
                    folded = True
                (path / name).unlink(missing_ok=True)
                self._cache.pop(name, None)
            if folded:
                temporary = path / ".exited"
                temporary.write_text(json.dumps(exited))
                temporary.replace(exited_path)
        self._cache = {name: self._cache[name] for name in seen if name in self._cache}
        return merge(own, live, exited)
