"""Where a host budget's files live, and how they are made: the key, the directory, the files.

Where the files live: ``$LOOPSAFE_RUNTIME_DIR/<key>`` if set, else
``$XDG_RUNTIME_DIR/loopsafe/<key>`` (a per-user tmpfs on systemd hosts), else
``<tempdir>/loopsafe-<uid>/<key>``. A directory loopsafe creates is mode
0700; one it finds must be owned by this user and not writable by others, or
`HostBudgetUnavailable` is raised: a budget that another user could hold or
fake is no bound. An unwritable directory raises the same error when the
budget is made: the bound is never silently dropped.

Each file's bytes are allocated when it is opened for the budget (`reserve`),
so a disk that fills up later never fails a write of the budget.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Final

from loopsafe.exceptions import HostBudgetUnavailable

__all__ = [
    "ENV_RUNTIME_DIR",
    "check_host_key",
    "check_host_limit",
    "default_host_key",
    "describe_failure",
    "file_bytes",
    "identity",
    "open_file",
    "private_directory",
    "reserve",
    "runtime_directory",
]

#: Environment variable naming the directory of the host budgets' files
#: (a volume shared by the containers of a Kubernetes pod, say).
ENV_RUNTIME_DIR: Final = "LOOPSAFE_RUNTIME_DIR"

_KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def default_host_key() -> str:
    """Return the default key: this user's id and the program's name, e.g. ``1000-gunicorn``.

    Every worker of one ``gunicorn`` or ``uvicorn`` command line shares it,
    whether forked or spawned (a spawned worker sees its parent's
    ``sys.argv``). Two programs of one user on one host get two budgets; give
    them one ``host_key`` to share a single budget.
    """
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    path = Path(argv0)
    name = path.parent.name if path.name in {"__main__.py", "-c", "-m"} else path.name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip("._-") or "python"
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return f"{uid}-{name}"[:100]


def check_host_key(key: object) -> str:
    """Return ``key`` if it is a valid host key; raise otherwise.

    Raises:
        TypeError: If it is not a str.
        ValueError: If it is not 1-100 of ``A-Z a-z 0-9 . _ -`` starting with a letter or digit.
    """
    if not isinstance(key, str):
        raise TypeError(f"host_key must be a str, not {type(key).__name__}")
    if not _KEY_PATTERN.fullmatch(key):
        raise ValueError(
            "host_key must be 1-100 characters of A-Z, a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return key


def check_host_limit(limit: object, name: str = "host_limit") -> int:
    """Return ``limit`` if it is a positive int; raise naming ``name`` otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"{name} must be a positive int or None, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return limit


def private_directory(path: Path) -> Path:
    """Create ``path`` (0700) or check that the existing one is this user's alone."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise HostBudgetUnavailable(
            f"cannot create the host budget's directory {path}: {exc.strerror}; "
            f"set {ENV_RUNTIME_DIR} to a writable directory"
        ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise HostBudgetUnavailable(f"{path} is not a directory (a symlink?); refusing to use it")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise HostBudgetUnavailable(
            f"{path} belongs to another user; set {ENV_RUNTIME_DIR} to a directory of your own"
        )
    if info.st_mode & 0o022:
        raise HostBudgetUnavailable(
            f"{path} is writable by other users, who could hold or fake the budget; "
            f"chmod go-w it or set {ENV_RUNTIME_DIR}"
        )
    return path


def runtime_directory(key: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory of the budget named ``key``, created if needed.

    Args:
        key: The host key.
        directory: The parent directory; default: see the module docstring.

    Raises:
        HostBudgetUnavailable: The directory cannot be made, or is not safe.
    """
    if directory is None:
        directory = os.environ.get(ENV_RUNTIME_DIR) or None
    if directory is not None:
        base = private_directory(Path(directory))
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg and Path(xdg).is_dir() and os.access(xdg, os.W_OK):
            base = private_directory(Path(xdg) / "loopsafe")
        else:
            uid = os.getuid() if hasattr(os, "getuid") else 0
            base = private_directory(Path(tempfile.gettempdir()) / f"loopsafe-{uid}")
    return private_directory(base / key)


def open_file(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, 0o600)


#: Processes per key that can publish their demand (8 bytes each in ``demand``).
MAX_PROCESSES: Final = 256


def file_bytes(name: str) -> int:
    """Bytes a budget file holds at most: 8 (a slot's declared memory), 16, or the demand."""
    if name == "demand":
        return 8 * MAX_PROCESSES
    return 16 if name == "service" else 8


def reserve(fd: int, size: int) -> None:
    """Allocate ``size`` bytes of the file now (contents kept), so no later write needs room."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # pragma: no cover - macOS: the first writes allocate
        return
    try:
        fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in {errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}:
            raise


def identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def describe_failure(exc: BaseException) -> str:
    """The OS's words for a failure: ``gate: Read-only file system (EROFS)``."""
    cause = exc.__cause__ if isinstance(exc, HostBudgetUnavailable) else exc
    if not isinstance(cause, OSError) or not cause.strerror or cause.errno is None:
        return str(exc)
    code = errno.errorcode.get(cause.errno, str(cause.errno))
    where = f"{Path(cause.filename).name}: " if isinstance(cause.filename, str) else ""
    return f"{where}{cause.strerror} ({code})"
