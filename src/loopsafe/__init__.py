"""loopsafe: password hashing that never blocks an async server.

The public surface is re-exported here; the modules behind it are private
(``loopsafe._pool``, ``loopsafe.hashers``...) except the ones users import by
name: `loopsafe.django`, `loopsafe.starlette`, `loopsafe.prometheus`,
`loopsafe.testing`, `loopsafe.exceptions`, `loopsafe.profiles`, `loopsafe.throttle`
and `loopsafe.devices`.
"""

from __future__ import annotations

from loopsafe import hashers, profiles
from loopsafe._api import PasswordHash
from loopsafe._calls import bind
from loopsafe._default import configure, default_pool
from loopsafe._lag import LagSnapshot, LoopLagMonitor
from loopsafe._limits import ContainerLimits, container_limits
from loopsafe._pool import HashPool
from loopsafe._settings import PoolSettings, usable_cpus
from loopsafe._statistics import PoolStatistics
from loopsafe.exceptions import (
    HasherNotAvailable,
    HostBudgetUnavailable,
    LoopsafeError,
    Overloaded,
    PoolClosed,
    Throttled,
    UnknownAlgorithm,
)
from loopsafe.hashers import (
    Argon2Hasher,
    BCryptHasher,
    BCryptSHA256Hasher,
    Hasher,
    MCFBCryptHasher,
    MD5Hasher,
    PBKDF2Hasher,
    PBKDF2SHA1Hasher,
    PHCArgon2Hasher,
    ScryptHasher,
)

__all__ = [
    "Argon2Hasher",
    "BCryptHasher",
    "BCryptSHA256Hasher",
    "ContainerLimits",
    "HashPool",
    "Hasher",
    "HasherNotAvailable",
    "HostBudgetUnavailable",
    "LagSnapshot",
    "LoopLagMonitor",
    "LoopsafeError",
    "MCFBCryptHasher",
    "MD5Hasher",
    "Overloaded",
    "PBKDF2Hasher",
    "PBKDF2SHA1Hasher",
    "PHCArgon2Hasher",
    "PasswordHash",
    "PoolClosed",
    "PoolSettings",
    "PoolStatistics",
    "ScryptHasher",
    "Throttled",
    "UnknownAlgorithm",
    "bind",
    "configure",
    "container_limits",
    "default_pool",
    "hashers",
    "profiles",
    "usable_cpus",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("loopsafe")
    raise AttributeError(f"module 'loopsafe' has no attribute {name!r}")
