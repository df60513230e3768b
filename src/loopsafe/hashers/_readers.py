"""Verify-only readers of other libraries' bare formats, for migrating to Django's."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from loopsafe.hashers._argon2 import MAX_THREADS, Argon2Hasher, check_argon2_cost, verify_argon2
from loopsafe.hashers._base import Hasher
from loopsafe.hashers._bcrypt import BCryptSHA256Hasher
from loopsafe.hashers._fields import (
    _BCRYPT_MAX_PASSWORD,
    _BadHash,
    _bcrypt_fields,
    _check_cost,
    _int_field,
    _unpadded_b64_field,
)


class _Reader(Hasher):
    """A verify-only hasher for another library's format; see `PHCArgon2Hasher`."""

    verify_only: ClassVar[bool] = True

    @property
    def params(self) -> dict[str, int]:
        """None: a reader makes no hashes, so it has no cost for new ones."""
        return {}

    def _refusal(self) -> NotImplementedError:
        return NotImplementedError(
            f"{type(self).__name__} only reads hashes that other libraries made, so that "
            "they verify and get replaced: make new hashes with a Django-format hasher "
            "such as Argon2Hasher"
        )

    def salt(self) -> str:
        """Refuse: a reader makes no hashes.

        Raises:
            NotImplementedError: Always, saying which hashers make hashes.
        """
        raise self._refusal()

    def encode(self, password: str | bytes, salt: str) -> str:  # noqa: ARG002 - the shared signature
        """Refuse: a reader makes no hashes (`hash` raises the same).

        Raises:
            NotImplementedError: Always, saying which hashers make hashes.
        """
        raise self._refusal()

    def _outdated(self, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the answer is always the same
        # Every hash a reader can read is to be replaced by a Django-format one.
        return True


# argon2-cffi's PHC strings: the C library writes m, t and p in this order, and
# "v=" since Argon2 1.3 (19); without it, the version is 1.0 (16).
_PHC_ARGON2 = re.compile(
    r"\$(argon2id|argon2i|argon2d)\$(?:v=(16|19)\$)?"
    r"m=([0-9]{1,12}),t=([0-9]{1,12}),p=([0-9]{1,12})"
    r"\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)"
)
# OpenBSD's modular crypt format. $2a$ and $2y$ compute what $2b$ does for the
# 72 bytes bcrypt reads; crypt_blowfish's $2x$ (its sign-extension bug) does not.
_MCF_BCRYPT = re.compile(r"\$(2[aby])\$([0-9]{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})")
# A 22-character bcrypt salt carries 4 spare bits in its last character; the
# bcrypt library refuses a salt that sets them.
_BCRYPT_SALT_LAST = frozenset(".Oeu")


class PHCArgon2Hasher(_Reader):
    """Reads bare Argon2 PHC strings (``$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>``).

    These are what argon2-cffi's ``PasswordHasher`` makes, so pwdlib's
    ``Argon2Hasher`` (the FastAPI tutorial's and fastapi-users') and passlib's
    ``argon2`` too: argon2id, argon2i or argon2d, version 19, or 16 when
    ``v=`` is missing. Verification is argon2-cffi's low-level
    ``verify_secret``, after the parameters were checked against
    `Argon2Hasher`'s bounds, so a hostile hash verifies as False without work;
    its lanes are computed by one thread on a pool worker, as `Argon2Hasher`'s.

    Args:
        threads: Threads that compute a hash's lanes; None: 1 on a loopsafe
            pool worker, the lanes elsewhere (see `Argon2Hasher`).

    Verify-only: every hash it reads must be updated, so a correct password
    through ``PasswordHash.verify_and_update`` comes back with the preferred
    hasher's Django-format hash. `hash`, `encode` and `salt` raise
    `NotImplementedError`, and it cannot be a `PasswordHash`'s first hasher.
    ``PasswordHash.recommended()`` includes it when argon2-cffi is installed.
    """

    algorithm: ClassVar[str] = "phc_argon2"
    prefixes: ClassVar[tuple[str, ...]] = ("$argon2id$", "$argon2i$", "$argon2d$")
    library: ClassVar[tuple[str, str] | None] = ("argon2-cffi", "argon2")
    library_module: ClassVar[str | None] = "argon2"
    #: `Argon2Hasher`'s bounds: a site that raises those raises these too.
    max_memory_cost: ClassVar[int] = Argon2Hasher.max_memory_cost
    max_time_cost: ClassVar[int] = Argon2Hasher.max_time_cost
    max_parallelism: ClassVar[int] = Argon2Hasher.max_parallelism
    max_work: ClassVar[int] = Argon2Hasher.max_work
    min_salt_length: ClassVar[int] = Argon2Hasher.min_salt_length
    #: The C library's minimum tag length (``ARGON2_MIN_OUTLEN``).
    min_hash_length: ClassVar[int] = 4

    def __init__(self, *, threads: int | None = None) -> None:
        """Choose the threads per verification (the library is imported on first use)."""
        self._threads = None if threads is None else _check_cost("threads", threads, 1, MAX_THREADS)

    @property
    def threads(self) -> int | None:
        """Threads per verification, or None for the default (1 on a pool worker)."""
        return self._threads

    def _decode(self, encoded: str) -> dict[str, Any]:
        match = _PHC_ARGON2.fullmatch(encoded)
        if match is None:
            raise _BadHash("not '$argon2id$', 'v=19$', 'm=..,t=..,p=..', a salt and a hash")
        variety, version, memory, time, lanes, salt, hash_ = match.groups()
        time_cost, memory_cost, parallelism = (
            _int_field(text, 1, 2**40, what)
            for text, what in ((time, "time_cost"), (memory, "memory_cost"), (lanes, "parallelism"))
        )
        check_argon2_cost(self, time_cost, memory_cost, parallelism)
        _unpadded_b64_field(salt, self.min_salt_length, "salt")
        _unpadded_b64_field(hash_, self.min_hash_length, "hash")
        return {
            "algorithm": self.algorithm,
            "hash": hash_,
            "memory_cost": memory_cost,
            "parallelism": parallelism,
            "salt": salt,
            "time_cost": time_cost,
            "variety": variety,
            "version": int(version or "16"),
        }

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:
        with self._importing():
            import argon2  # noqa: F401 - only to turn a missing library into HasherNotAvailable
        return verify_argon2(
            encoded,
            password,
            decoded["variety"],
            lanes=decoded["parallelism"],
            threads=self._threads,
        )


class MCFBCryptHasher(_Reader):
    """Reads bare bcrypt strings in the modular crypt format (``$2b$12$<salt><checksum>``).

    These are what ``bcrypt.hashpw`` makes of the raw password, so pwdlib's
    ``BcryptHasher`` and passlib's ``bcrypt`` too; not Django's
    ``bcrypt_sha256$``/``bcrypt$`` strings, which `BCryptSHA256Hasher` and
    `BCryptHasher` read. ``$2b$``, ``$2a$`` and PHP's ``$2y$`` are read;
    crypt_blowfish's buggy ``$2x$`` is not. A cost outside [`min_rounds`,
    `max_rounds`] (`BCryptSHA256Hasher`'s bounds) verifies as False without
    work. Verify-only, like `PHCArgon2Hasher`.

    Passwords over 72 bytes: bcrypt reads the first 72 only, and a stored hash
    of a longer password can only come from a library that cut it there
    silently (passlib; bcrypt before 5.0, and so pwdlib with it; bcrypt 5
    refuses such a password). While `truncate_long_passwords` is True (the
    default) a longer password is checked the same way, so that its owner can
    log in and get a Django-format hash of the whole password; a subclass that
    sets it False answers False, as `BCryptHasher` does. Neither raises.
    """

    algorithm: ClassVar[str] = "mcf_bcrypt"
    prefixes: ClassVar[tuple[str, ...]] = ("$2b$", "$2a$", "$2y$")
    library: ClassVar[tuple[str, str] | None] = ("bcrypt", "bcrypt")
    library_module: ClassVar[str | None] = "bcrypt"
    #: `BCryptSHA256Hasher`'s bounds: a stored cost above 16 verifies as False
    #: without work (bcrypt itself would run cost 31, 2**19 times Django's work).
    min_rounds: ClassVar[int] = BCryptSHA256Hasher.min_rounds
    max_rounds: ClassVar[int] = BCryptSHA256Hasher.max_rounds
    #: Whether a password over 72 bytes is checked on its first 72, as the
    #: libraries that made such hashes did (True), or answers False.
    truncate_long_passwords: ClassVar[bool] = True

    def _decode(self, encoded: str) -> dict[str, Any]:
        match = _MCF_BCRYPT.fullmatch(encoded)
        if match is None:
            raise _BadHash("not '$2b$', a two-digit cost and 53 bcrypt characters")
        if match.group(3)[-1] not in _BCRYPT_SALT_LAST:
            raise _BadHash("the salt's last character sets bits bcrypt leaves unused")
        return _bcrypt_fields(self.algorithm, match, self.min_rounds, self.max_rounds)

    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - the string is what bcrypt compares
        with self._importing():
            import bcrypt
        # bcrypt 5 raises for more than 72 bytes: the same 72 it always read go
        # in, so a too-long password costs what any other does.
        too_long = len(password) > _BCRYPT_MAX_PASSWORD
        try:
            ok = bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], encoded.encode("ascii"))
        except ValueError:
            return False  # a hash the library refuses
        return ok and (self.truncate_long_passwords or not too_long)


#: The readers, for `identify_hasher`'s hint when a bare format is not configured.
_READERS: tuple[type[_Reader], ...] = (PHCArgon2Hasher, MCFBCryptHasher)
