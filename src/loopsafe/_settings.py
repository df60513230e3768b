"""The pool's settings: their defaults, their validation, and the one value that carries them.

One place for every default and every bound. `PoolSettings` holds them all as
one frozen value, checked once with every problem reported together; `HashPool`,
`configure`, every web integration, Django's ``LOOPSAFE`` and the command line
take it (or build it from their keyword arguments).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from loopsafe._limits import usable_cpus
from loopsafe._runtime_dir import check_host_key

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_QUEUE_WAIT",
    "DEFAULT_NICE",
    "DEFAULT_SETTINGS",
    "MAX_NICE",
    "PoolSettings",
    "Problem",
    "raise_problems",
    "settings_problems",
    "usable_cpus",
]

_log = logging.getLogger("loopsafe.pool")

#: How much the workers' nice value is raised by default (Linux). The event
#: loop's thread then wins the CPU from a hash whenever it wakes: with Argon2
#: at Django's 8 lanes, 2 workers run 16 hashing threads against the loop's one.
DEFAULT_NICE: Final = 10

#: The highest nice value Linux knows.
MAX_NICE: Final = 19

#: Default longest estimated queue wait, in seconds, at which a call is admitted.
DEFAULT_MAX_QUEUE_WAIT: Final = 1.0

#: Default most calls that may wait in the queue at once.
DEFAULT_MAX_PENDING: Final = 1024


def _checked_workers(value: object) -> int:
    if value is None:
        return usable_cpus()
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_workers must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_workers must be at least 1, not {value}")
    return value


def _checked_queue_wait(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"max_queue_wait must be a number or None, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError(
            f"max_queue_wait must be a finite positive number of seconds, or None, not {value!r}"
        )
    return float(value)


def _checked_pending(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_pending must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_pending must be at least 1, not {value}")
    return value


def _checked_nice(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"nice must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_NICE:
        raise ValueError(f"nice must be between 0 and {MAX_NICE}, not {value}")
    return value


#: Environment variable read when the default pool is made: a host-wide bound
#: on hashes at once (an int, or ``auto`` for the usable CPUs), so
#: ``uvicorn --workers 4`` shares one budget without a code change.
ENV_HOST_LIMIT: Final = "LOOPSAFE_HOST_LIMIT"


def _checked_host_limit(value: object, name: str = "host_limit") -> int | None:
    """Resolve a host limit: a positive int, ``"auto"`` (the usable CPUs) or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return usable_cpus()
        raise ValueError(f"{name} must be a positive int, 'auto' or None, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        kind = type(value).__name__
        raise TypeError(f"{name} must be a positive int, 'auto' or None, not {kind}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def host_limit_from_env() -> int | None:
    """Read ``LOOPSAFE_HOST_LIMIT``: an int, ``auto``, or unset/empty for no host budget.

    Raises:
        ValueError: The variable holds anything else (the message names it).
    """
    raw = os.environ.get(ENV_HOST_LIMIT, "").strip()
    if not raw:
        return None
    if raw.lower() == "auto":
        return usable_cpus()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_HOST_LIMIT} must be a positive integer or 'auto', not {raw!r}"
        ) from None
    if value < 1:
        raise ValueError(f"{ENV_HOST_LIMIT} must be a positive integer or 'auto', not {raw!r}")
    return value


def _checked_max_memory(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_memory must be an int (bytes) or None, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_memory must be a positive number of bytes, or None, not {value}")
    return value


def _checked_host_key(value: object) -> str | None:
    if value is None:
        return None
    return check_host_key(value)


def _checked_monitor_lag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"monitor_lag must be True or False, not {type(value).__name__}")
    return value


#: Each setting's check, in the order they are reported. A check returns the
#: value as the settings keep it ("auto" becomes a count, an int wait a float).
_CHECKS: Final[dict[str, Callable[[object], object]]] = {
    "max_workers": lambda value: None if value is None else _checked_workers(value),
    "max_queue_wait": _checked_queue_wait,
    "max_pending": _checked_pending,
    "nice": _checked_nice,
    "host_limit": _checked_host_limit,
    "host_key": _checked_host_key,
    "max_memory": _checked_max_memory,
    "monitor_lag": _checked_monitor_lag,
}


@dataclass(frozen=True)
class Problem:
    """One setting that cannot be used: its name, the exception class and what is wrong."""

    setting: str
    kind: type[TypeError | ValueError]
    message: str


def settings_problems(values: Mapping[str, object]) -> tuple[dict[str, object], list[Problem]]:
    """Check every value at once: return the values as `PoolSettings` keeps them, and the problems.

    Unknown names are problems too (a `TypeError`, as for an unknown keyword).
    Nothing is built and no thread is started.
    """
    checked: dict[str, object] = {}
    problems = [
        Problem(name, TypeError, f"{name} is not a loopsafe setting")
        for name in values
        if name not in _CHECKS
    ]
    for name, check in _CHECKS.items():
        if name not in values:
            continue
        try:
            checked[name] = check(values[name])
        except (TypeError, ValueError) as exc:
            kind: type[TypeError | ValueError] = (
                TypeError if isinstance(exc, TypeError) else ValueError
            )
            problems.append(Problem(name, kind, str(exc)))
    return checked, problems


def raise_problems(problems: list[Problem], where: str = "loopsafe settings") -> None:
    """Raise one exception for every problem: `TypeError` if any is one, else `ValueError`."""
    if not problems:
        return
    kind = TypeError if any(p.kind is TypeError for p in problems) else ValueError
    if len(problems) == 1:
        raise kind(problems[0].message)
    listed = "; ".join(p.message for p in problems)
    raise kind(f"{len(problems)} invalid {where}: {listed}")


@dataclass(frozen=True, init=False)
class PoolSettings:
    """Every setting of a loopsafe pool and of the web integrations, as one frozen value.

    Like httpx's ``Limits`` or argon2-cffi's ``Parameters``: built once,
    checked once (every problem reported in one exception, each naming its
    setting), then handed to `HashPool`, `loopsafe.configure`, the Starlette
    ``lifespan``, Litestar's ``LoopsafePlugin``, aiohttp's ``setup``,
    fastapi-users' and Django's ``LOOPSAFE["POOL"]``. Making one builds no
    pool and starts no thread. Equal settings compare equal and hash alike;
    `dataclasses.replace` makes a changed copy (checked again).

    Args:
        max_workers: Hashes that run at once; None: the CPUs this process may
            use, following the container's limit (see `HashPool`).
        max_queue_wait: Longest estimated queue wait, in seconds, at which a
            call is admitted: finite and positive, or None for no wait check.
        max_pending: Most calls waiting in the queue (at least 1).
        nice: How much the hashing threads' nice value is raised (0-19).
        host_limit: Hashes at once across the host's processes sharing
            ``host_key``: a positive int, ``"auto"`` (the usable CPUs, resolved
            now) or None for no host budget. `from_env` reads
            ``LOOPSAFE_HOST_LIMIT`` for it.
        host_key: Which host budget to share (None: user id and program name).
        max_memory: Bytes the running hashes may declare together (None: half
            the container's memory limit where one is set, else no bound).
        monitor_lag: The web integrations run a `LoopLagMonitor` for the app's
            life (for `loopsafe.prometheus`); a bare `HashPool` ignores it.

    Raises:
        TypeError: A setting has the wrong type (a bool where an int belongs
            counts as one); every problem is listed.
        ValueError: A setting is out of range (inf, nan, zero, negative...);
            every problem is listed.
    """

    max_workers: int | None
    max_queue_wait: float | None
    max_pending: int
    nice: int
    host_limit: int | None
    host_key: str | None
    max_memory: int | None
    monitor_lag: bool

    def __init__(
        self,
        *,
        max_workers: int | None = None,
        max_queue_wait: float | None = DEFAULT_MAX_QUEUE_WAIT,
        max_pending: int = DEFAULT_MAX_PENDING,
        nice: int = DEFAULT_NICE,
        host_limit: int | str | None = None,
        host_key: str | None = None,
        max_memory: int | None = None,
        monitor_lag: bool = False,
    ) -> None:
        """Check every setting; keep them."""
        checked, problems = settings_problems(
            {
                "max_workers": max_workers,
                "max_queue_wait": max_queue_wait,
                "max_pending": max_pending,
                "nice": nice,
                "host_limit": host_limit,
                "host_key": host_key,
                "max_memory": max_memory,
                "monitor_lag": monitor_lag,
            }
        )
        raise_problems(problems)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, **settings: Any) -> PoolSettings:  # noqa: ANN401 - each setting's own type
        """Return these settings, with ``host_limit`` from ``LOOPSAFE_HOST_LIMIT`` unless given.

        What every integration uses when given no settings: ``uvicorn
        --workers 4`` with ``LOOPSAFE_HOST_LIMIT=auto`` shares one host budget
        without a code change. A ``host_limit`` given here (not None) wins.

        Raises:
            TypeError: As the constructor; every problem is listed.
            ValueError: As the constructor, or ``LOOPSAFE_HOST_LIMIT`` holds
                neither a positive int nor ``auto`` (named in the message).
        """
        problems: list[Problem] = []
        if settings.get("host_limit") is None:
            try:
                settings["host_limit"] = host_limit_from_env()
            except ValueError as exc:
                problems.append(Problem(ENV_HOST_LIMIT, ValueError, str(exc)))
                settings.pop("host_limit", None)
        _, more = settings_problems(settings)
        raise_problems(problems + more)
        return cls(**settings)

    @classmethod
    def merge(
        cls,
        settings: object,
        *,
        from_env: bool = False,
        **keywords: Any,  # noqa: ANN401 - each setting's own type
    ) -> PoolSettings:
        """Return ``settings``, or one built from ``keywords``; refuse both at once.

        For callers that keep their separate keyword arguments (`HashPool`,
        `configure`, the integrations) next to ``settings=``: a keyword that
        differs from its default beside a ``settings`` value is a mistake.
        ``from_env`` builds the keywords' value with `from_env` (what the
        default pool and the integrations do), else with the constructor.

        Raises:
            TypeError: Both were given, ``settings`` is not a `PoolSettings`,
                or a keyword has the wrong type (every problem is listed).
            ValueError: A keyword is out of range (every problem is listed).
        """
        if settings is None:
            return cls.from_env(**keywords) if from_env else cls(**keywords)
        if not isinstance(settings, PoolSettings):
            raise TypeError(
                f"settings must be a loopsafe PoolSettings, not {type(settings).__name__}"
            )
        given = sorted(name for name, value in keywords.items() if value != _DEFAULTS[name])
        if given:
            raise TypeError(
                "pass settings=PoolSettings(...) or the separate keywords, "
                f"not both ({', '.join(given)})"
            )
        return settings

    def pool_values(
        self,
    ) -> tuple[int | None, float | None, int, int, int | None, str | None, int | None]:
        """The values `HashPool` takes, in its order (``monitor_lag`` is not the pool's).

        ``(max_workers, max_queue_wait, max_pending, nice, host_limit, host_key, max_memory)``.
        """
        return (
            self.max_workers,
            self.max_queue_wait,
            self.max_pending,
            self.nice,
            self.host_limit,
            self.host_key,
            self.max_memory,
        )


_DEFAULTS: Final[dict[str, object]] = {
    "max_workers": None,
    "max_queue_wait": DEFAULT_MAX_QUEUE_WAIT,
    "max_pending": DEFAULT_MAX_PENDING,
    "nice": DEFAULT_NICE,
    "host_limit": None,
    "host_key": None,
    "max_memory": None,
    "monitor_lag": False,
}

#: The settings every integration starts from when given none (no host budget:
#: use `PoolSettings.from_env` to honour ``LOOPSAFE_HOST_LIMIT``).
DEFAULT_SETTINGS: Final = PoolSettings()
