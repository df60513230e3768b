"""bcrypt and bcrypt over SHA-256 in Django's formats, through the bcrypt package."""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import hmac
from typing import Any, ClassVar

from loopsafe.hashers._base import SCALE_DOWN, Hasher
from loopsafe.hashers._fields import (
    _BCRYPT_DATA,
    _BCRYPT_MAX_PASSWORD,
    _BCRYPT_SALT,
    _BadHash,
    _bcrypt_fields,
    _check_cost,
    _password_bytes,
)


class BCryptSHA256Hasher(Hasher):
    """bcrypt over a SHA-256 pre-hash (``bcrypt_sha256$$2b$12$<salt><checksum>``).

    Like Django, the password is hashed with SHA-256 and bcrypt gets the hex
    digest, so any length works and no byte after the 72nd is ignored.

    Args:
        rounds: The log2 cost of new hashes (Django: 12).
    """

    algorithm: ClassVar[str] = "bcrypt_sha256"
    library: ClassVar[tuple[str, str] | None] = ("bcrypt", "bcrypt")
    library_module: ClassVar[str | None] = "bcrypt"
    #: Whether the password is SHA-256 pre-hashed (False: plain bcrypt).
    prehash: ClassVar[bool] = True
    #: Stored hashes above cost 16 (16x the work of Django's 12: the cost is
    #: logarithmic) verify as False without work; bcrypt itself would run cost
    #: 31, 2**19 times Django's work.
    max_rounds: ClassVar[int] = 16
    #: bcrypt's own minimum cost.
    min_rounds: ClassVar[int] = 4

    def __init__(self, *, rounds: int = 12) -> None:
        """Set the cost of new hashes (the library is imported on first use)."""
        self._rounds = _check_cost("rounds", rounds, self.min_rounds, self.max_rounds)

    @property
    def rounds(self) -> int:
        """The log2 cost of new hashes."""
        return self._rounds

    def memory_per_hash(self) -> int:
        """Bcrypt's 4 KiB Blowfish state."""
        return 4 * 1024

    @property
    def params(self) -> dict[str, int]:
        """The log2 cost."""
        return {"rounds": self._rounds}

    def _scaled_down(self) -> tuple[Hasher, float] | None:
        cheap = max(self.min_rounds, self._rounds - SCALE_DOWN.bit_length() + 1)
        return type(self)(rounds=cheap), float(2 ** (self._rounds - cheap))

    def salt(self) -> str:
        """Return a bcrypt salt for this cost, such as ``$2b$12$`` and 22 characters."""
        with self._importing():
            import bcrypt
        return bcrypt.gensalt(self._rounds).decode("ascii")

    def _secret(self, password: bytes) -> bytes:
        if self.prehash:
            return binascii.hexlify(hashlib.sha256(password).digest())
        if len(password) > _BCRYPT_MAX_PASSWORD:
            raise ValueError(
                f"plain bcrypt reads only the first {_BCRYPT_MAX_PASSWORD} bytes of a "
                "password and this one is longer; use BCryptSHA256Hasher (bcrypt_sha256), "
                "which has no length limit"
            )
        return password

    def encode(self, password: str | bytes, salt: str | bytes) -> str:
        """Hash with a bcrypt salt such as `salt` returns; its cost is the one used.

        Raises:
            TypeError: If ``password`` or ``salt`` has the wrong type.
            ValueError: If ``salt`` is not a bcrypt salt with a cost in
                [`min_rounds`, `max_rounds`], if ``password`` cannot be UTF-8
                encoded, or (plain bcrypt) if it is over 72 bytes.
            HasherNotAvailable: If bcrypt is not installed.
        """
        secret = self._secret(_password_bytes(password))
        if isinstance(salt, bytes):
            salt = salt.decode("ascii", errors="replace")
        if not isinstance(salt, str):
            raise TypeError(f"salt must be str or bytes, not {type(salt).__name__}")
        match = _BCRYPT_SALT.match(salt)
        if match is None or not self.min_rounds <= int(match[2]) <= self.max_rounds:
            raise ValueError(
                f"salt must be a bcrypt salt ('$2b$' and a cost in [{self.min_rounds}, "
                f"{self.max_rounds}], then 22 characters) such as salt() returns"
            )
        with self._importing():
            import bcrypt
        data = bcrypt.hashpw(secret, match[0].encode("ascii"))
        return f"{self.algorithm}${data.decode('ascii')}"

    def _decode(self, encoded: str) -> dict[str, Any]:
        algorithm, data = encoded.split("$", 1)
        match = _BCRYPT_DATA.fullmatch(data)
        if match is None:
            raise _BadHash("not '$2b$', a two-digit cost and 53 bcrypt characters")
        return _bcrypt_fields(algorithm, match, self.min_rounds, self.max_rounds)

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the string is what bcrypt compares
        # Over 72 bytes, no plain bcrypt hash can hold the password: the answer
        # is False, but after the same work as any wrong password.
        too_long = not self.prehash and len(password) > _BCRYPT_MAX_PASSWORD
        secret = password[:_BCRYPT_MAX_PASSWORD] if too_long else self._secret(password)
        with self._importing():
            import bcrypt
        data = encoded[len(self.algorithm) + 1 :].encode("ascii")
        try:
            again = bcrypt.hashpw(secret, data[:29])
        except ValueError:
            return False  # a salt the library refuses
        return hmac.compare_digest(data, again) and not too_long

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        # Django's bcrypt hashers check the cost only: bcrypt makes its own salts.
        return bool(decoded["work_factor"] != self._rounds)

    def _harden(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> None:
        # The cost is logarithmic: one more round doubles the work.
        extra = 2 ** (self._rounds - decoded["work_factor"]) - 1
        if extra <= 0:
            return
        too_long = not self.prehash and len(password) > _BCRYPT_MAX_PASSWORD
        secret = password[:_BCRYPT_MAX_PASSWORD] if too_long else self._secret(password)
        with self._importing():
            import bcrypt
        salt = encoded[len(self.algorithm) + 1 :][:29].encode("ascii")
        with contextlib.suppress(ValueError):  # a refused salt: verify did no work either
            for _ in range(extra):
                bcrypt.hashpw(secret, salt)


class BCryptHasher(BCryptSHA256Hasher):
    """Plain bcrypt (``bcrypt$$2b$12$...``): passwords over 72 bytes are refused.

    bcrypt reads only 72 bytes of a password (bcrypt 5 refuses longer ones).
    `encode` and `hash` raise a `ValueError` saying to use
    `BCryptSHA256Hasher` instead, and `verify` answers False (after the same
    work as a wrong password, so the answer's timing tells nothing).

    Args:
        rounds: The log2 cost of new hashes (Django: 12).
    """

    algorithm: ClassVar[str] = "bcrypt"
    prehash: ClassVar[bool] = False
