"""What a Django password call tells the pool: the client's key and priority, memory and cost.

Django's hashers are Django's; loopsafe still needs two numbers about them for
admission: the bytes one hash holds (``MAX_MEMORY``) and the seconds one hash
takes (the prior a cold pool admits by). Memory comes from the hasher's own
attributes; cost from loopsafe's hasher of the same algorithm and parameters
(its scaled-down measurement, made once at start-up by `estimate_cost`, never on
the event loop).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from django.contrib.auth import hashers

from loopsafe._password_call import Route
from loopsafe.django._client import current_key, current_priority
from loopsafe.hashers import (
    Argon2Hasher,
    BCryptHasher,
    BCryptSHA256Hasher,
    PBKDF2Hasher,
    PBKDF2SHA1Hasher,
    ScryptHasher,
)
from loopsafe.hashers._kdf import scrypt_memory

if TYPE_CHECKING:
    from loopsafe._fair import Key
    from loopsafe.hashers import Hasher

__all__ = ["estimate_cost", "hasher_memory", "route", "twin"]

_TWINS: dict[str, type[Hasher]] = {
    cls.algorithm: cls
    for cls in (
        PBKDF2Hasher,
        PBKDF2SHA1Hasher,
        Argon2Hasher,
        BCryptSHA256Hasher,
        BCryptHasher,
        ScryptHasher,
    )
}


def hasher_memory(hasher: object) -> int:
    """Return the bytes one hash of this Django hasher needs (0 for CPU-only algorithms)."""
    algorithm = getattr(hasher, "algorithm", None)
    if algorithm == "argon2":
        return int(getattr(hasher, "memory_cost", 0)) * 1024
    if algorithm == "scrypt":
        return scrypt_memory(
            int(getattr(hasher, "work_factor", 0)),
            int(getattr(hasher, "block_size", 0)),
            int(getattr(hasher, "parallelism", 0)),
        )
    return 0


def twin(hasher: object) -> Hasher | None:
    """Return loopsafe's hasher with this Django hasher's algorithm and costs, or None.

    None for an algorithm loopsafe does not make (MD5, a custom one) or costs
    out of loopsafe's bounds.
    """
    cls = _TWINS.get(str(getattr(hasher, "algorithm", "")))
    if cls is None:
        return None
    names = _cost_names(cls)
    try:
        costs = tuple(int(getattr(hasher, name)) for name in names)
    except (AttributeError, TypeError, ValueError):
        return None
    return _twin(cls, names, costs)


@lru_cache(maxsize=16)
def _cost_names(cls: type[Hasher]) -> tuple[str, ...]:
    """The cost attributes a loopsafe hasher class shares with Django's (``iterations``...)."""
    return tuple(sorted(cls().params))


@lru_cache(maxsize=32)
def _twin(cls: type[Hasher], names: tuple[str, ...], costs: tuple[int, ...]) -> Hasher | None:
    try:
        return cls(**dict(zip(names, costs, strict=True)))
    except (TypeError, ValueError):
        return None


def _preferred() -> object | None:
    try:
        return hashers.get_hashers()[0]
    except (ImportError, IndexError):  # Django raises its own error at the hash
        return None


def estimate_cost() -> float | None:
    """Measure, once per process and cost, what one hash of Django's preferred hasher takes.

    A scaled-down hash of loopsafe's twin (a few milliseconds), done at
    start-up (the app's ``ready()``) so each call can pass it as ``cost=``.
    """
    preferred = twin(_preferred())
    return None if preferred is None else preferred.estimated_seconds()


def _memory() -> int:
    """Bytes the most memory-hungry configured hasher declares, for ``MAX_MEMORY``."""
    try:
        return max((hasher_memory(h) for h in hashers.get_hashers()), default=0)
    except ImportError:  # a missing hasher is Django's error to raise, at the hash
        return 0


def route(key: Key) -> Route:
    """The route of a Django password call: its key and priority, memory and cost.

    ``key`` given: that key at priority 0. None: the login being served's
    (`loopsafe.django._client.using_key`): the request's client, or a trusted
    device's own key at its higher priority (`loopsafe.devices`).
    """
    preferred = twin(_preferred())
    return Route(
        key=current_key() if key is None else key,
        priority=current_priority() if key is None else 0,
        memory=_memory(),
        cost=None if preferred is None else preferred.cached_estimate(),
    )
