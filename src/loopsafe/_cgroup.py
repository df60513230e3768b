"""Reading the kernel's cgroup files: the CPU quota and memory limit of this process.

Pure parsing over files whose paths can be injected (tests lay out synthetic
trees exactly as the kernel does); `detect` is the one entry point and never
raises into the application. `loopsafe._limits` caches its answer and keeps it
fresh; the rules it follows are described there.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["DETECT_ENV", "HASHING_MEMORY_SHARE", "ContainerLimits", "Source", "detect"]

_log = logging.getLogger("loopsafe.limits")

#: Environment variable that turns cgroup detection off when set to ``0``
#: (or ``false``, ``no``, ``off``): the pool is then sized from the affinity
#: mask alone, as before loopsafe read cgroups.
DETECT_ENV: Final = "LOOPSAFE_CGROUP_DETECT"

#: Share of the cgroup memory limit that hashing may use by default: the other
#: half is left to the application itself (Django, the ORM, request buffers),
#: so a burst of memory-hard hashes is never what gets the container OOM-killed.
HASHING_MEMORY_SHARE: Final = 0.5

#: How the limits were found, also the ``source`` label of the Prometheus gauges
#: (a few fixed values: never a path, so the label's cardinality stays tiny).
Source = Literal["cgroup_v2", "cgroup_v1", "none", "disabled"]

_FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})
_OCTAL: Final = frozenset("01234567")


def _affinity_cpus() -> int:
    """Return the CPUs the scheduler lets this process run on (affinity-aware)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13+
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS and Windows on Python < 3.13
        count = os.cpu_count()
    return max(1, count or 1)


def _physical_memory() -> int | None:
    """Return the machine's physical memory in bytes, or None if unknown."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - Windows
        return None
    if pages <= 0 or page_size <= 0:  # pragma: no cover - a broken sysconf
        return None
    return int(pages) * int(page_size)


def _format_bytes(value: int) -> str:
    """Show a byte count the way people write limits: ``1 GiB``, ``512 MiB``, ``1.5 GiB``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            amount = value / size
            text = f"{amount:.0f}" if amount == int(amount) else f"{amount:.1f}"
            return f"{text} {unit}"
    return f"{value} B"


@dataclass(frozen=True)
class ContainerLimits:
    """What detection found: the CPU and memory limits, and where each came from.

    Attributes:
        cpus: CPUs the default pool uses: the affinity count, lowered to the
            cgroup CPU limit when there is one. This is `usable_cpus()`.
        affinity: CPUs the scheduler lets the process run on (cpusets included).
        cpu_limit: ``ceil(quota / period)`` of the tightest CPU quota, at least 1;
            None when no level has a quota.
        cpu_quota: The tightest quota in CPUs (``quota / period``, e.g. 1.5), or None.
        cpu_source: Where the CPU quota was read, e.g.
            ``"cgroup v2 /kubepods/pod1/ctr: cpu.max 200000 100000"``, or None.
        memory_limit: The tightest memory limit in bytes, or None.
        memory_source: Where the memory limit was read, or None.
        source: How the limits were found (``cgroup_v2``, ``cgroup_v1``, ``none``
            when no limit applies, ``disabled`` when detection is turned off).
            Low cardinality: the Prometheus label.
        problems: Files that were unreadable or held garbage (skipped), in the
            order met; empty when everything parsed.
    """

    cpus: int
    affinity: int
    cpu_limit: int | None = None
    cpu_quota: float | None = None
    cpu_source: str | None = None
    memory_limit: int | None = None
    memory_source: str | None = None
    source: Source = "none"
    problems: tuple[str, ...] = field(default=(), compare=False)

    @property
    def hashing_memory(self) -> int | None:
        """Bytes hashing may use by default: `HASHING_MEMORY_SHARE` of the memory limit."""
        if self.memory_limit is None:
            return None
        return int(self.memory_limit * HASHING_MEMORY_SHARE)

    @property
    def _workers(self) -> str:
        return f"{self.cpus} worker{'' if self.cpus == 1 else 's'}"

    def describe(self) -> str:
        """Say what was detected and from where, in one line for logs and reports.

        For example ``cgroup v2 /kubepods/pod1/ctr: cpu.max 200000 100000 ->
        2 workers; cgroup v2 /kubepods/pod1/ctr: memory.max 1 GiB -> 512 MiB for
        hashing``.
        """
        if self.source == "disabled":
            return (
                f"cgroup detection off ({DETECT_ENV}=0) -> "
                f"{self._workers} (CPU affinity); no memory limit used"
            )
        if self.cpu_source is None:
            cpu = f"no cgroup CPU limit -> {self._workers} (CPU affinity)"
        elif self.cpu_limit is not None and self.cpu_limit > self.affinity:
            cpu = (
                f"{self.cpu_source} -> {self.cpu_limit} CPUs, "
                f"affinity {self.affinity} -> {self._workers}"
            )
        else:
            cpu = f"{self.cpu_source} -> {self._workers}"
        if self.memory_source is None or self.hashing_memory is None:
            memory = "no cgroup memory limit"
        else:
            memory = f"{self.memory_source} -> {_format_bytes(self.hashing_memory)} for hashing"
        return f"{cpu}; {memory}"

    def as_dict(self) -> dict[str, object]:
        """Return the JSON-ready form used by the ``bench`` report's ``machine`` section."""
        return {
            "source": self.source,
            "cpus": self.cpus,
            "affinity": self.affinity,
            "cpu_limit": self.cpu_limit,
            "cpu_quota": self.cpu_quota,
            "cpu_from": self.cpu_source,
            "memory_limit": self.memory_limit,
            "hashing_memory": self.hashing_memory,
            "memory_from": self.memory_source,
            "summary": self.describe(),
        }


# -- warnings, each said once per process ---------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(message: str) -> None:
    with _warned_lock:
        if message in _warned:
            return
        _warned.add(message)
    _log.warning("%s; loopsafe ignores it and sizes the pool without it", message)


# -- parsing the kernel's files ---------------------------------------------------


def _unescape(field_text: str) -> str:
    r"""Undo mountinfo's octal escapes (``\040`` for a space, ``\134`` for a backslash)."""
    if "\\" not in field_text:
        return field_text
    out: list[str] = []
    i = 0
    while i < len(field_text):
        chunk = field_text[i : i + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and set(chunk[1:]) <= _OCTAL:  # noqa: PLR2004 - \ooo
            out.append(chr(int(chunk[1:], 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class _Mount:
    root: str  # the path inside the hierarchy that is mounted
    point: str  # where it is mounted, in the process's view
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1 only: the superblock options naming controllers


def _parse_mountinfo(text: str) -> list[_Mount]:
    """Return the cgroup mounts of a ``/proc/self/mountinfo`` text; skip lines that do not parse."""
    mounts: list[_Mount] = []
    for line in text.splitlines():
        fields = line.split()
        try:
            separator = fields.index("-", 6)
            fstype = fields[separator + 1]
            if fstype not in {"cgroup", "cgroup2"}:
                continue
            root, point = _unescape(fields[3]), _unescape(fields[4])
            options = fields[separator + 3] if len(fields) > separator + 3 else ""
        except (ValueError, IndexError):
            if line.strip():
                _warn_once(f"a line of mountinfo does not parse: {line[:80]!r}")
            continue
        controllers = frozenset(options.split(",")) if fstype == "cgroup" else frozenset()
        mounts.append(_Mount(root, point, 2 if fstype == "cgroup2" else 1, controllers))
    return mounts


def _parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """Return the v1 path per controller and the v2 path of a ``/proc/self/cgroup`` text."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):  # noqa: PLR2004 - id:controllers:path
            if line.strip():
                _warn_once(f"a line of /proc/self/cgroup does not parse: {line[:80]!r}")
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            v2 = path
        else:
            for name in controllers.split(","):
                v1[name] = path
    return v1, v2


def _within(path: str, root: str) -> str | None:
    """Return ``path`` relative to ``root`` ("" for root itself), or None if outside it."""
    if root == "/":
        return path.strip("/")
    root = root.rstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1 :].strip("/")
    return None


@dataclass(frozen=True)
class _Level:
    """One cgroup directory to read: its place on disk and its name in the hierarchy."""

    directory: Path  # on disk, under the injectable root
    name: str  # the hierarchy path, as /proc/self/cgroup shows it (what reports say)


def _levels(root_dir: Path, mount: _Mount, cgroup_path: str) -> list[_Level] | None:
    """Return the process's cgroup and each visible ancestor, leaf first; None if not visible.

    The mount shows the hierarchy from ``mount.root`` down: the process's
    cgroup ``/a/b/c`` under a mount of ``/a`` at ``/sys/fs/cgroup/cpu`` is
    ``/sys/fs/cgroup/cpu/b/c``, and its visible ancestors are ``.../b`` and
    the mount point itself (the cgroup ``/a``). This is the arithmetic a v1
    container with a non-root mount needs (Docker mounts ``/docker/<id>``).
    """
    if cgroup_path.startswith("/.."):  # outside this cgroup namespace's view
        return None
    relative = _within(cgroup_path, mount.root)
    if relative is None:
        return None
    parts = relative.split("/") if relative else []
    base = root_dir / mount.point.lstrip("/")
    mount_name = mount.root.rstrip("/") or ""
    levels: list[_Level] = []
    for depth in range(len(parts), -1, -1):
        sub = parts[:depth]
        directory = base.joinpath(*sub)
        name = "/".join([mount_name, *sub]) or "/"
        levels.append(_Level(directory, name if name.startswith("/") else "/" + name))
    return levels


def _pick_mount(mounts: list[_Mount], cgroup_path: str) -> _Mount | None:
    """Of the mounts of one hierarchy, the one that shows the most of the process's cgroup."""
    best: _Mount | None = None
    for mount in mounts:
        if _within(cgroup_path, mount.root) is None:
            continue
        if best is None or len(mount.root.rstrip("/")) > len(best.root.rstrip("/")):
            best = mount
    return best


class _Files:
    """Read limit files through an injectable reader; record what was unreadable or garbage."""

    def __init__(self, read: Callable[[Path], str]) -> None:
        self._read = read
        self.problems: list[str] = []

    def read(self, directory: Path, name: str) -> str | None:
        """Return the stripped text of a file, or None if it is missing or unreadable."""
        path = directory / name
        try:
            return self._read(path).strip()
        except (FileNotFoundError, NotADirectoryError):
            return None  # no such controller at this level: no limit here
        except (OSError, UnicodeDecodeError) as exc:
            self.garbage(path, f"cannot be read ({type(exc).__name__})")
            return None

    def garbage(self, path: Path, what: str) -> None:
        self.problems.append(str(path))
        _warn_once(f"cgroup file {path} {what}")


def _positive_int(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()):  # rejects signs, spaces, decimals, "²"
        return None
    value = int(text)
    return value if value > 0 else None


@dataclass(frozen=True)
class _Cpu:
    quota: int
    period: int
    source: str

    @property
    def cpus(self) -> float:
        return self.quota / self.period


def _cpu_v2(files: _Files, level: _Level) -> _Cpu | None:
    text = files.read(level.directory, "cpu.max")
    if text is None:
        return None
    parts = text.split()
    if parts[:1] == ["max"] and (len(parts) == 1 or _positive_int(parts[-1]) is not None):
        return None  # "max period": no quota at this level
    if len(parts) == 2:  # noqa: PLR2004 - "quota period"
        quota, period = _positive_int(parts[0]), _positive_int(parts[1])
        if quota is not None and period is not None:
            return _Cpu(quota, period, f"cgroup v2 {level.name}: cpu.max {quota} {period}")
    files.garbage(level.directory / "cpu.max", f"holds {text[:40]!r}")
    return None


def _cpu_v1(files: _Files, level: _Level) -> _Cpu | None:
    quota_text = files.read(level.directory, "cpu.cfs_quota_us")
    if quota_text is None or quota_text == "-1":
        return None
    quota = _positive_int(quota_text)
    if quota is None:
        files.garbage(level.directory / "cpu.cfs_quota_us", f"holds {quota_text[:40]!r}")
        return None
    period_text = files.read(level.directory, "cpu.cfs_period_us")
    if period_text is None:
        return None
    period = _positive_int(period_text)
    if period is None:
        files.garbage(level.directory / "cpu.cfs_period_us", f"holds {period_text[:40]!r}")
        return None
    return _Cpu(
        quota,
        period,
        f"cgroup v1 {level.name}: cpu.cfs_quota_us {quota} / cpu.cfs_period_us {period}",
    )


@dataclass(frozen=True)
class _Memory:
    limit: int
    source: str


def _memory_value(
    files: _Files, level: _Level, name: str, physical: int | None, version: int
) -> _Memory | None:
    text = files.read(level.directory, name)
    if text is None or text == "max":
        return None
    value = _positive_int(text)
    if value is None:
        files.garbage(level.directory / name, f"holds {text[:40]!r}")
        return None
    if physical is not None and value >= physical:
        return None  # binds nothing: v1's "unlimited" is 9223372036854771712
    return _Memory(value, f"cgroup v{version} {level.name}: {name} {_format_bytes(value)}")


def _memory_v1_hierarchical(files: _Files, level: _Level, physical: int | None) -> _Memory | None:
    """v1's own answer over every ancestor, seen or not: ``hierarchical_memory_limit``."""
    text = files.read(level.directory, "memory.stat")
    if text is None:
        return None
    for line in text.splitlines():
        key, _, value_text = line.partition(" ")
        if key != "hierarchical_memory_limit":
            continue
        value = _positive_int(value_text.strip())
        if value is None:
            files.garbage(level.directory / "memory.stat", f"holds {line[:60]!r}")
            return None
        if physical is not None and value >= physical:
            return None
        return _Memory(
            value,
            f"cgroup v1 {level.name}: memory.stat hierarchical_memory_limit {_format_bytes(value)}",
        )
    return None


def _tightest_cpu(candidates: list[_Cpu | None]) -> _Cpu | None:
    found = [c for c in candidates if c is not None]
    return min(found, key=lambda c: c.cpus) if found else None


def _tightest_memory(candidates: list[_Memory | None]) -> _Memory | None:
    found = [m for m in candidates if m is not None]
    return min(found, key=lambda m: m.limit) if found else None


def _hierarchy(
    controller: str,
    v1_paths: dict[str, str],
    v2_path: str | None,
    mounts: list[_Mount],
    root_dir: Path,
) -> tuple[int, list[_Level]] | None:
    """Return the cgroup version that holds ``controller`` and the levels to read in it.

    A v1 hierarchy that has the controller wins (hybrid hosts mount v2 too, with
    no controllers in it); otherwise the v2 hierarchy. None when the controller
    is nowhere, or the process's cgroup is not visible under any of its mounts.
    """
    if controller in v1_paths:
        path = v1_paths[controller]
        candidates = [m for m in mounts if m.version == 1 and controller in m.controllers]
        version = 1
    elif v2_path is not None:
        path = v2_path
        candidates = [m for m in mounts if m.version == 2]  # noqa: PLR2004 - cgroup v2
        version = 2
    else:
        return None
    mount = _pick_mount(candidates, path)
    levels = None if mount is None else _levels(root_dir, mount, path)
    if levels is None:
        if candidates:
            _log.debug("the %s cgroup %s is not visible under its mounts", controller, path)
        return None
    return version, levels


def _read_cpu(files: _Files, version: int, levels: list[_Level]) -> _Cpu | None:
    """Return the tightest CPU quota of ``levels`` (the leaf and its visible ancestors)."""
    reader = _cpu_v1 if version == 1 else _cpu_v2
    return _tightest_cpu([reader(files, level) for level in levels])


def _read_memory(
    files: _Files, version: int, levels: list[_Level], physical: int | None
) -> _Memory | None:
    """Return the tightest memory limit of ``levels`` (the leaf and its visible ancestors)."""
    name = "memory.limit_in_bytes" if version == 1 else "memory.max"
    candidates = [_memory_value(files, level, name, physical, version) for level in levels]
    if version == 1:
        candidates.append(_memory_v1_hierarchical(files, levels[0], physical))
    return _tightest_memory(candidates)


def _default_read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def _detection_enabled(environ: Mapping[str, str]) -> bool:
    return environ.get(DETECT_ENV, "1").strip().lower() not in _FALSE_WORDS


def detect(
    root: str | os.PathLike[str] = "/",
    *,
    affinity: int | None = None,
    physical_memory: int | None = None,
    read: Callable[[Path], str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ContainerLimits:
    """Read the cgroup limits now and return what they allow (uncached; use `container_limits`).

    Args:
        root: Directory that stands for ``/``: tests lay out ``proc/self/cgroup``,
            ``proc/self/mountinfo`` and the cgroup trees under a temporary
            directory exactly as the kernel does.
        affinity: The affinity CPU count; defaults to the scheduler's.
        physical_memory: Physical memory in bytes; defaults to the machine's.
        read: Reads a file's text; defaults to ``open().read()``. Tests inject
            one that raises (root can read any file, even under ``chmod 000``).
        environ: Environment to read `DETECT_ENV` from; defaults to ``os.environ``.

    Returns:
        The limits; never raises for missing, unreadable or garbage files.
    """
    affinity = _affinity_cpus() if affinity is None else max(1, affinity)
    environ = os.environ if environ is None else environ
    if not _detection_enabled(environ):
        return ContainerLimits(cpus=affinity, affinity=affinity, source="disabled")
    root_dir = Path(root)
    physical = _physical_memory() if physical_memory is None else physical_memory
    files = _Files(read or _default_read)
    proc_cgroup = files.read(root_dir / "proc/self", "cgroup")
    mountinfo = files.read(root_dir / "proc/self", "mountinfo")
    if proc_cgroup is None or mountinfo is None:  # not Linux, or no /proc
        return ContainerLimits(cpus=affinity, affinity=affinity, problems=tuple(files.problems))
    v1_paths, v2_path = _parse_proc_cgroup(proc_cgroup)
    mounts = _parse_mountinfo(mountinfo)
    found_cpu = _hierarchy("cpu", v1_paths, v2_path, mounts, root_dir)
    cpu = None if found_cpu is None else _read_cpu(files, *found_cpu)
    found_memory = _hierarchy("memory", v1_paths, v2_path, mounts, root_dir)
    memory = None if found_memory is None else _read_memory(files, *found_memory, physical)
    cpu_limit = None if cpu is None else max(1, -(-cpu.quota // cpu.period))
    source: Source = "none"
    limited = found_cpu if cpu is not None else found_memory if memory is not None else None
    if limited is not None:
        source = "cgroup_v1" if limited[0] == 1 else "cgroup_v2"
    return ContainerLimits(
        cpus=affinity if cpu_limit is None else min(affinity, cpu_limit),
        affinity=affinity,
        cpu_limit=cpu_limit,
        cpu_quota=None if cpu is None else round(cpu.cpus, 3),
        cpu_source=None if cpu is None else cpu.source,
        memory_limit=None if memory is None else memory.limit,
        memory_source=None if memory is None else memory.source,
        source=source,
        problems=tuple(files.problems),
    )
