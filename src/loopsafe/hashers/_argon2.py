"""Argon2 in Django's format (``argon2$argon2id$...``), through argon2-cffi.

Every Argon2 hash and verification in loopsafe goes through `hash_argon2` and
`verify_argon2` here, which compute the stored lanes with `argon2_threads`
threads (`loopsafe.hashers._argon2_core`): one on a pool worker.
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Protocol

from loopsafe._threads import on_worker
from loopsafe.hashers._base import SCALE_DOWN, Hasher
from loopsafe.hashers._fields import (
    _ARGON2_TAG,
    _BadHash,
    _check_cost,
    _check_salt,
    _password_bytes,
)


class _Argon2Bounds(Protocol):
    max_memory_cost: ClassVar[int]
    max_time_cost: ClassVar[int]
    max_parallelism: ClassVar[int]
    max_work: ClassVar[int]


def check_argon2_cost(
    bounds: _Argon2Bounds, time_cost: int, memory_cost: int, parallelism: int
) -> None:
    """Refuse (`_BadHash`) Argon2 costs outside ``bounds``, before any work is done.

    One check for `Argon2Hasher` and `PHCArgon2Hasher`, whose bounds are the same
    class attributes.
    """
    if not 1 <= time_cost <= bounds.max_time_cost:
        raise _BadHash(f"time_cost is outside this hasher's bounds [1, {bounds.max_time_cost}]")
    if not 1 <= parallelism <= bounds.max_parallelism:
        raise _BadHash(f"parallelism is outside this hasher's bounds [1, {bounds.max_parallelism}]")
    if not 8 * parallelism <= memory_cost <= bounds.max_memory_cost:
        raise _BadHash(
            f"memory_cost is outside this hasher's bounds [8 * parallelism, "
            f"{bounds.max_memory_cost}]"
        )
    if time_cost * memory_cost > bounds.max_work:
        raise _BadHash(f"time_cost * memory_cost is over this hasher's bound {bounds.max_work}")


#: The C library's highest thread count (``ARGON2_MAX_THREADS``).
MAX_THREADS = 0xFFFFFF


def argon2_threads(threads: int | None, lanes: int) -> int:
    """How many threads compute ``lanes`` lanes: ``threads`` if set, else the default.

    The default is 1 on a loopsafe pool worker, whose pool already runs one
    hash per core, so lane threads would only compete with the event loop's
    thread; elsewhere it is ``lanes``, argon2-cffi's own choice. The hash is
    the same either way.
    """
    if threads is not None:
        return threads
    return 1 if on_worker() else lanes


def verify_argon2(
    phc: str, password: bytes, variety: str, *, lanes: int, threads: int | None = None
) -> bool:
    """Check ``password`` against a bare PHC string (``$argon2id$v=19$...``) within bounds.

    The one Argon2 verification both `Argon2Hasher` (its string after the
    ``argon2`` prefix) and `PHCArgon2Hasher` run, after `check_argon2_cost`:
    argon2-cffi's ``verify_secret`` computed by `argon2_threads` threads. The
    caller has imported argon2. A string the C library refuses, or another
    variety than ``variety``, verifies as False, as with ``verify_secret``.
    """
    from argon2.low_level import Type

    from loopsafe.hashers import _argon2_core

    kind = Type[variety.removeprefix("argon2").upper()]
    return _argon2_core.verify_encoded(phc, password, kind, threads=argon2_threads(threads, lanes))


class Argon2Hasher(Hasher):
    """Argon2id through argon2-cffi (``argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash``).

    Made like Django's: argon2-cffi's low-level ``hash_secret`` with the salt
    string's bytes and a 32-byte hash. Stored argon2i and argon2d hashes verify too.

    The lanes (``parallelism``, ``p=`` in a stored hash) are part of the hash;
    the threads that compute them are not. argon2-cffi starts one thread per
    lane; on a loopsafe pool worker this hasher computes all lanes on the
    worker's own thread, through argon2-cffi's ``argon2_context``, with the
    same bytes as a result. Pass ``threads`` to choose otherwise.

    Args:
        time_cost: Passes over memory (Django: 2).
        memory_cost: KiB of memory per hash (Django: 102400, i.e. 100 MiB).
        parallelism: Lanes (Django: 8).
        threads: Threads that compute the lanes of every hash and verification
            (at most the lanes are used). None: 1 on a loopsafe pool worker,
            the lanes elsewhere (argon2-cffi's choice).
    """

    algorithm: ClassVar[str] = "argon2"
    library: ClassVar[tuple[str, str] | None] = ("argon2-cffi", "argon2")
    library_module: ClassVar[str | None] = "argon2"
    #: 2 GiB: RFC 9106's high-memory recommendation (argon2-cffi's
    #: ``RFC_9106_HIGH_MEMORY``), 20x Django's 100 MiB. A stored hash asking
    #: for more verifies as False without allocating.
    max_memory_cost: ClassVar[int] = 2 * 1024 * 1024
    #: 32x Django's 2 passes (RFC 9106's low-memory profile uses 3).
    max_time_cost: ClassVar[int] = 64
    #: 8x Django's 8 lanes (on a pool worker one thread computes them all).
    max_parallelism: ClassVar[int] = 64
    #: time_cost x memory_cost, in KiB passes: twice RFC 9106's high-memory
    #: profile (1 pass over 2 GiB) and 20x the work of Django's default, so a
    #: stored hash can cost at most about 20 default hashes.
    max_work: ClassVar[int] = 4 * 1024 * 1024
    #: The C library's minimum (``ARGON2_MIN_SALT_LENGTH``).
    min_salt_length: ClassVar[int] = 8

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 102_400,
        parallelism: int = 8,
        threads: int | None = None,
    ) -> None:
        """Set the cost of new hashes (the library is imported on first use)."""
        self._threads = None if threads is None else _check_cost("threads", threads, 1, MAX_THREADS)
        self._time_cost = _check_cost("time_cost", time_cost, 1, self.max_time_cost)
        self._memory_cost = _check_cost("memory_cost", memory_cost, 8, self.max_memory_cost)
        self._parallelism = _check_cost("parallelism", parallelism, 1, self.max_parallelism)
        if memory_cost < 8 * parallelism:
            raise ValueError("memory_cost must be at least 8 KiB per lane (8 * parallelism)")
        if time_cost * memory_cost > self.max_work:
            raise ValueError(f"time_cost * memory_cost must be at most {self.max_work}")

    @property
    def time_cost(self) -> int:
        """Passes over memory for new hashes."""
        return self._time_cost

    @property
    def memory_cost(self) -> int:
        """KiB of memory for new hashes."""
        return self._memory_cost

    @property
    def parallelism(self) -> int:
        """Lanes for new hashes."""
        return self._parallelism

    def memory_per_hash(self) -> int:
        """``memory_cost`` KiB, in bytes."""
        return self._memory_cost * 1024

    @property
    def threads(self) -> int | None:
        """Threads per hash, or None for `argon2_threads`' default (1 on a pool worker)."""
        return self._threads

    @property
    def params(self) -> dict[str, int]:
        """time_cost, memory_cost (KiB) and parallelism."""
        return {
            "time_cost": self._time_cost,
            "memory_cost": self._memory_cost,
            "parallelism": self._parallelism,
        }

    def _scaled_down(self) -> tuple[Hasher, float] | None:
        # Time grows with the memory filled (time_cost passes over it).
        cheap = max(8 * self._parallelism, self._memory_cost // SCALE_DOWN)
        cheaper = type(self)(
            time_cost=self._time_cost, memory_cost=cheap, parallelism=self._parallelism
        )
        return cheaper, self._memory_cost / cheap

    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash with ``salt`` as Django does (argon2id, the salt's bytes, a 32-byte hash).

        Raises:
            TypeError: See `Hasher.encode`.
            ValueError: See `Hasher.encode`; also for a salt under 8 bytes.
            HasherNotAvailable: If argon2-cffi is not installed.
        """
        secret = _password_bytes(password)
        salt = _check_salt(salt)
        if len(salt.encode()) < self.min_salt_length:
            raise ValueError(f"argon2 salts must be at least {self.min_salt_length} bytes")
        with self._importing():
            import argon2

            from loopsafe.hashers import _argon2_core
        data = _argon2_core.hash_encoded(
            secret,
            salt.encode(),
            time_cost=self._time_cost,
            memory_cost=self._memory_cost,
            parallelism=self._parallelism,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            type=argon2.low_level.Type.ID,
            threads=argon2_threads(self._threads, self._parallelism),
        )
        return self.algorithm + data.decode("ascii")

    def _decode(self, encoded: str) -> dict[str, Any]:
        with self._importing():
            import argon2
        algorithm, rest = encoded.split("$", 1)
        params = argon2.extract_parameters("$" + rest)
        variety, *_, b64salt, hash_ = rest.split("$")
        if variety not in {"argon2id", "argon2i", "argon2d"}:
            raise _BadHash("unknown argon2 variety")
        if not _ARGON2_TAG.fullmatch(hash_) or len(hash_) % 4 == 1:
            raise _BadHash("the hash is not unpadded base64 of at least 4 bytes")
        check_argon2_cost(self, params.time_cost, params.memory_cost, params.parallelism)
        salt = base64.b64decode(b64salt + "=" * (-len(b64salt) % 4), validate=True)
        return {
            "algorithm": algorithm,
            "hash": hash_,
            "memory_cost": params.memory_cost,
            "parallelism": params.parallelism,
            "salt": salt.decode("latin1"),
            "time_cost": params.time_cost,
            "variety": variety,
            "version": params.version,
            "params": params,
        }

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:
        with self._importing():
            import argon2  # noqa: F401 - only to turn a missing library into HasherNotAvailable
        return verify_argon2(
            encoded[len(self.algorithm) :],
            password,
            decoded["variety"],
            lanes=decoded["parallelism"],
            threads=self._threads,
        )

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        with self._importing():
            import argon2
        current: argon2.Parameters = decoded["params"]
        wanted = argon2.Parameters(
            type=argon2.low_level.Type.ID,
            version=argon2.low_level.ARGON2_VERSION,
            # The salt is ours, not argon2-cffi's: its length is not a parameter.
            salt_len=current.salt_len,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            time_cost=self._time_cost,
            memory_cost=self._memory_cost,
            parallelism=self._parallelism,
        )
        return current != wanted or super()._outdated(decoded)
