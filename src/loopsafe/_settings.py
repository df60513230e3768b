"""The pool's settings: their defaults, their validation, and the workers' CPU priority.

One place for every default and every bound, used by `HashPool`, `configure`,
the Starlette lifespan, Django's ``LOOPSAFE`` settings and the command line.
"""

from __future__ import annotations

import logging
import math
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
