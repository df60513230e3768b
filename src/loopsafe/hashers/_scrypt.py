"""scrypt in Django's format, through the faster KDF backend (`_kdf`)."""

from __future__ import annotations

from typing import Any, ClassVar

from loopsafe.hashers import _kdf
from loopsafe.hashers._base import SCALE_DOWN, Hasher
from loopsafe.hashers._fields import (
    _b64,
    _BadHash,
    _check_cost,
    _check_salt,
    _hash_field,
    _int_field,
    _password_bytes,
    _salt_field,
    _same,
)
from loopsafe.hashers._kdf import scrypt_memory


class ScryptHasher(Hasher):
    """scrypt (``scrypt$N$salt$r$p$hash``), through hashlib or ``cryptography``, the faster here.

    Args:
        work_factor: N, a power of two (Django: 2**14).
        block_size: r (Django: 8).
        parallelism: p (Django 5.1 and later: 5; Django 4.2: 1).
    """

    algorithm: ClassVar[str] = "scrypt"
    #: Memory (128 x N x r bytes) above which a stored hash verifies as False
    #: without work: 16x Django's 16 MiB, and 8x the 32 MiB OpenSSL lets
    #: Django's own hasher use (its ``maxmem`` is 0, OpenSSL's default).
    max_memory_bytes: ClassVar[int] = 256 * 1024 * 1024
    #: N x r x p above which a stored hash verifies as False without work:
    #: 64x Django's default (64x its time).
    max_work: ClassVar[int] = 64 * (2**14 * 8 * 5)

    def __init__(
        self, *, work_factor: int = 2**14, block_size: int = 8, parallelism: int = 5
    ) -> None:
        """Set the cost of new hashes."""
        self._work_factor = _check_cost("work_factor", work_factor, 2, self.max_work)
        self._block_size = _check_cost("block_size", block_size, 1, self.max_work)
        self._parallelism = _check_cost("parallelism", parallelism, 1, self.max_work)
        reason = self._cost_problem(work_factor, block_size, parallelism)
        if reason is not None:
            raise ValueError(reason)

    @classmethod
    def _cost_problem(cls, n: int, r: int, p: int) -> str | None:
        if n & (n - 1):
            return "work_factor must be a power of two"
        if 128 * n * r > cls.max_memory_bytes:
            return f"128 * work_factor * block_size must be at most {cls.max_memory_bytes} bytes"
        if n * r * p > cls.max_work:
            return f"work_factor * block_size * parallelism must be at most {cls.max_work}"
        return None

    @property
    def work_factor(self) -> int:
        """The work factor N for new hashes."""
        return self._work_factor

    @property
    def block_size(self) -> int:
        """The block size r for new hashes."""
        return self._block_size

    @property
    def parallelism(self) -> int:
        """The parallelism p for new hashes."""
        return self._parallelism

    def memory_per_hash(self) -> int:
        """``128 x r x (N + p)`` bytes (`scrypt_memory`)."""
        return scrypt_memory(self._work_factor, self._block_size, self._parallelism)

    @property
    def params(self) -> dict[str, int]:
        """N, r and p, by Django's names."""
        return {
            "work_factor": self._work_factor,
            "block_size": self._block_size,
            "parallelism": self._parallelism,
        }

    def _scaled_down(self) -> tuple[Hasher, float] | None:
        cheap = max(2, self._work_factor // SCALE_DOWN)
        cheaper = type(self)(
            work_factor=cheap, block_size=self._block_size, parallelism=self._parallelism
        )
        return cheaper, self._work_factor / cheap

    @staticmethod
    def _derive(password: bytes, salt: str, n: int, r: int, p: int) -> str:
        return _b64(_kdf.scrypt(password, salt.encode(), n, r, p))

    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash with ``salt`` and this hasher's N, r and p."""
        secret = _password_bytes(password)
        salt = _check_salt(salt)
        n, r, p = self._work_factor, self._block_size, self._parallelism
        return f"{self.algorithm}${n}${salt}${r}${p}${self._derive(secret, salt, n, r, p)}"

    def _decode(self, encoded: str) -> dict[str, Any]:
        algorithm, n, salt, r, p, hash_ = encoded.split("$", 5)
        work_factor = _int_field(n, 2, self.max_work, "work_factor")
        block_size = _int_field(r, 1, self.max_work, "block_size")
        parallelism = _int_field(p, 1, self.max_work, "parallelism")
        reason = self._cost_problem(work_factor, block_size, parallelism)
        if reason is not None:
            raise _BadHash(reason)
        return {
            "algorithm": algorithm,
            "work_factor": work_factor,
            "salt": _salt_field(salt),
            "block_size": block_size,
            "parallelism": parallelism,
            "hash": _hash_field(hash_, 64),
        }

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the decoded fields are enough
        # Chosen first: a misconfigured LOOPSAFE_KDF_BACKEND raises, never reads as False.
        _kdf.backend("scrypt")
        try:
            again = self._derive(
                password,
                decoded["salt"],
                decoded["work_factor"],
                decoded["block_size"],
                decoded["parallelism"],
            )
        except ValueError:
            return False  # OpenSSL could not allocate what the (in-bounds) hash asks
        # A MemoryError (Python could not allocate) says nothing about the
        # password: it propagates, and a pool answers it with Overloaded.
        return _same(decoded["hash"], again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        # Django's scrypt hasher compares N, r and p, not the salt.
        return bool(
            decoded["work_factor"] != self._work_factor
            or decoded["block_size"] != self._block_size
            or decoded["parallelism"] != self._parallelism
        )
