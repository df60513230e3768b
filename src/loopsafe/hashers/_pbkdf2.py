"""PBKDF2-HMAC-SHA256 and -SHA1 in Django's formats, through the faster KDF backend (`_kdf`)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from loopsafe.hashers import _kdf
from loopsafe.hashers._base import SCALE_DOWN, Hasher
from loopsafe.hashers._fields import (
    _b64,
    _check_cost,
    _check_salt,
    _hash_field,
    _int_field,
    _password_bytes,
    _salt_field,
    _same,
)


class PBKDF2Hasher(Hasher):
    """PBKDF2-HMAC-SHA256, Django's default (``pbkdf2_sha256$iterations$salt$hash``).

    Args:
        iterations: For new hashes. Defaults to Django 6.1's 1,500,000.
    """

    algorithm: ClassVar[str] = "pbkdf2_sha256"
    #: The hashlib name of the PRF's digest (SHA-256 and SHA-1 may be computed by
    #: ``cryptography``, whichever is faster here: see `loopsafe.hashers.kdf_backends`).
    digest: ClassVar[str] = "sha256"
    #: Stored hashes above this verify as False without work. 13x Django
    #: 6.1's default (13x its time) leaves room for a decade of Django's
    #: increases and any site's own tuning, while a hostile 10**12 costs nothing.
    max_iterations: ClassVar[int] = 20_000_000

    def __init__(self, *, iterations: int = 1_500_000) -> None:
        """Set the iteration count for new hashes (at most `max_iterations`)."""
        self._iterations = _check_cost("iterations", iterations, 1, self.max_iterations)

    @property
    def iterations(self) -> int:
        """PBKDF2 iterations for new hashes."""
        return self._iterations

    @property
    def params(self) -> dict[str, int]:
        """The iteration count."""
        return {"iterations": self._iterations}

    def _scaled_down(self) -> tuple[Hasher, float] | None:
        cheap = max(1, self._iterations // SCALE_DOWN)
        return type(self)(iterations=cheap), self._iterations / cheap

    def _derive(self, password: bytes, salt: str, iterations: int) -> str:
        return _b64(_kdf.pbkdf2_hmac(self.digest, password, salt.encode(), iterations))

    def encode(self, password: str | bytes, salt: str, iterations: int | None = None) -> str:
        """Hash with ``salt`` and, like Django, an optional iteration count for this one hash.

        Raises:
            TypeError: See `Hasher.encode`.
            ValueError: See `Hasher.encode`; also for ``iterations`` out of bounds.
        """
        secret = _password_bytes(password)
        salt = _check_salt(salt)
        if iterations is None:
            iterations = self._iterations
        _check_cost("iterations", iterations, 1, self.max_iterations)
        return f"{self.algorithm}${iterations}${salt}${self._derive(secret, salt, iterations)}"

    def _decode(self, encoded: str) -> dict[str, Any]:
        algorithm, iterations, salt, hash_ = encoded.split("$", 3)
        return {
            "algorithm": algorithm,
            "hash": _hash_field(hash_, hashlib.new(self.digest).digest_size),
            "iterations": _int_field(iterations, 1, self.max_iterations, "iterations"),
            "salt": _salt_field(salt),
        }

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the decoded fields are enough
        again = self._derive(password, decoded["salt"], decoded["iterations"])
        return _same(decoded["hash"], again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        return decoded["iterations"] != self._iterations or super()._outdated(decoded)

    def _harden(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> None:  # noqa: ARG002 - the decoded fields are enough
        extra = self._iterations - decoded["iterations"]
        if extra > 0:
            self._derive(password, decoded["salt"], extra)


class PBKDF2SHA1Hasher(PBKDF2Hasher):
    """PBKDF2-HMAC-SHA1 (``pbkdf2_sha1$...``), second in Django's default list for old hashes.

    Args:
        iterations: For new hashes. Defaults to Django 6.1's 1,500,000.
    """

    algorithm: ClassVar[str] = "pbkdf2_sha1"
    digest: ClassVar[str] = "sha1"
