"""Salted MD5 in Django's format: only to read very old hashes (tests use it as a cheap hasher)."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from loopsafe.hashers._base import Hasher
from loopsafe.hashers._fields import (
    _MD5_HEX,
    _BadHash,
    _check_salt,
    _password_bytes,
    _salt_field,
    _same,
)


class MD5Hasher(Hasher):
    """Salted MD5 (``md5$salt$hash``): insecure, for legacy hashes and fast test suites only."""

    algorithm: ClassVar[str] = "md5"

    @property
    def params(self) -> dict[str, int]:
        """None: MD5 has no cost."""
        return {}

    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash ``salt + password`` with MD5, as Django does."""
        secret = _password_bytes(password)
        salt = _check_salt(salt)
        digest = hashlib.md5(salt.encode() + secret, usedforsecurity=False).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def _decode(self, encoded: str) -> dict[str, Any]:
        algorithm, salt, hash_ = encoded.split("$", 2)
        if not _MD5_HEX.fullmatch(hash_):
            raise _BadHash("the hash is not 32 lower-case hex digits")
        return {"algorithm": algorithm, "hash": hash_, "salt": _salt_field(salt)}

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the decoded fields are enough
        digest = hashlib.md5(decoded["salt"].encode() + password, usedforsecurity=False)
        return _same(decoded["hash"], digest.hexdigest())
