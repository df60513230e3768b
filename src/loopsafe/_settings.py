"""The pool's settings: their defaults, their validation, and the workers' CPU priority.

One place for every default and every bound, used by `HashPool`, `configure`,
the Starlette lifespan, Django's ``LOOPSAFE`` settings and the command line.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Final

from loopsafe._limits import usable_cpus

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_QUEUE_WAIT",
    "DEFAULT_NICE",
    "MAX_NICE",
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
        raise ValueError("max_workers must be at least 1")
    return value


def _checked_queue_wait(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"max_queue_wait must be a number or None, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise ValueError("max_queue_wait must be a positive number of seconds, or None")
    return float(value)


def _checked_pending(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_pending must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError("max_pending must be at least 1")
    return value


def _checked_nice(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"nice must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_NICE:
        raise ValueError(f"nice must be between 0 and {MAX_NICE}")
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
        raise ValueError("max_memory must be a positive number of bytes, or None")
    return value
