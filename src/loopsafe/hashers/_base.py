"""`Hasher`: the base class every hasher shares (parsing, bounds, verify, must_update)."""

from __future__ import annotations

import contextlib
import importlib
import math
import secrets
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from loopsafe.exceptions import HasherNotAvailable

if TYPE_CHECKING:
    from collections.abc import Iterator

from loopsafe.hashers._fields import (
    _BITS_PER_SALT_CHAR,
    MAX_ENCODED_LENGTH,
    SALT_CHARS,
    _BadHash,
    _must_update_salt,
    _work_bytes,
    check_encoded_type,
)


class Hasher(ABC):
    """A password hasher in one of Django's formats, or a reader of another library's.

    Instances are immutable (their cost parameters are read-only properties),
    keep no per-call state, and are safe to share between threads.

    ``verify``, ``must_update`` and ``harden_runtime`` never raise for an
    encoded string they cannot read (malformed, another algorithm's, or with
    parameters outside the class's bounds): ``verify`` answers False,
    ``must_update`` False (there is nothing to update until the password has
    been verified, which it cannot be) and ``harden_runtime`` does nothing.
    """

    #: The algorithm's name: for Django's formats, the prefix of encoded
    #: strings before the first ``$``.
    algorithm: ClassVar[str]
    #: What every encoded string of this format starts with. Empty (Django's
    #: formats) means ``algorithm$``; the readers of bare formats name theirs
    #: (``$argon2id$``, ``$2b$``...), which no Django prefix can be.
    prefixes: ClassVar[tuple[str, ...]] = ()
    #: True for the readers of other libraries' formats (`PHCArgon2Hasher`,
    #: `MCFBCryptHasher`): they verify stored hashes, which then always need
    #: an update, and make none, so they cannot be a `PasswordHash`'s first hasher.
    verify_only: ClassVar[bool] = False
    #: Bits of entropy in a fresh salt (Django: 128, i.e. 22 characters).
    salt_entropy: ClassVar[int] = 128
    #: (pip package, loopsafe extra) of the library this algorithm needs, if any.
    library: ClassVar[tuple[str, str] | None] = None
    #: The module of that library, imported by `check_available`.
    library_module: ClassVar[str | None] = None

    # -- the work, per algorithm -------------------------------------------------------

    @abstractmethod
    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash ``password`` with ``salt`` and this hasher's parameters.

        Raises:
            TypeError: If ``password`` is not str or bytes, or ``salt`` is not str.
            ValueError: If ``salt`` is empty or contains ``$``, or ``password``
                is a str with lone surrogates (it cannot be UTF-8 encoded).
            HasherNotAvailable: If the algorithm's library is not installed.
        """

    @abstractmethod
    def _decode(self, encoded: str) -> dict[str, Any]:
        """Parse an ASCII string that starts with ``algorithm$`` and bound its cost."""

    @abstractmethod
    def _verify(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> bool:
        """Check a password against a decoded, in-bounds hash."""

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        """Whether a readable hash has other parameters than new ones get."""
        return _must_update_salt(decoded["salt"], self.salt_entropy)

    def _harden(self, password: bytes, encoded: str, decoded: dict[str, Any]) -> None:  # noqa: B027 - a no-op, like Django's, unless overridden
        """Spend the work an in-bounds stored hash is short of."""

    def memory_per_hash(self) -> int:
        """Bytes one hash with this hasher's parameters holds while it runs (0: negligible).

        Argon2 declares ``memory_cost`` KiB, scrypt ``128 x r x (N + p)``
        bytes, bcrypt its 4 KiB state; PBKDF2 and MD5 a few hundred bytes, 0.
        """
        return 0

    @property
    @abstractmethod
    def params(self) -> dict[str, int]:
        """The cost parameters new hashes get, by Django's attribute names."""

    def _scaled_down(self) -> tuple[Hasher, float] | None:
        """A cheaper hasher of the same kind and how many times dearer this one is, or None."""
        return None

    def estimated_seconds(self) -> float | None:
        """Seconds one hash takes here, from a cheap scaled-down hash; measured once, cached.

        A cold pool (no call finished yet) has no service time to admit by;
        `PasswordHash` hands it this estimate, so a burst at startup is refused
        like one on a warm pool. The measurement hashes with about 1/64 of the
        cost (a few milliseconds at Django's defaults) and scales the time up;
        call it at startup, off the request path (the Starlette lifespan does).
        None for algorithms too cheap to matter.
        """
        key = (type(self), tuple(sorted(self.params.items())))
        cached = _ESTIMATES.get(key)
        if cached is not None or key in _ESTIMATES:
            return cached
        scaled = self._scaled_down()
        if scaled is None:
            _ESTIMATES[key] = None
            return None
        cheaper, factor = scaled
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            cheaper.hash("loopsafe-estimate")
            best = min(best, time.perf_counter() - start)
        estimate = best * factor
        _ESTIMATES[key] = estimate
        return estimate

    def cached_estimate(self) -> float | None:
        """`estimated_seconds` if it was measured already, else None (never measures)."""
        return _ESTIMATES.get((type(self), tuple(sorted(self.params.items()))))

    # -- the public methods, shared ----------------------------------------------------

    @classmethod
    def _leads(cls) -> tuple[str, ...]:
        """What this format's encoded strings start with (`prefixes`, or ``algorithm$``)."""
        return cls.prefixes or (cls.algorithm + "$",)

    def check_available(self) -> None:
        """Raise `HasherNotAvailable`, naming the extra to install, if the library is missing."""
        if self.library_module is not None:
            with self._importing():
                importlib.import_module(self.library_module)

    @contextlib.contextmanager
    def _importing(self) -> Iterator[None]:
        """Turn an ImportError in the block into `HasherNotAvailable` with the install hint."""
        try:
            yield
        except ImportError as exc:
            package, extra = self.library or ("its library", "all")
            raise HasherNotAvailable(
                f"{self.algorithm} hashes need {package}: pip install 'loopsafe[{extra}]'"
            ) from exc

    def salt(self) -> str:
        """Return a fresh random salt of `salt_entropy` bits in Django's alphabet."""
        count = math.ceil(self.salt_entropy / _BITS_PER_SALT_CHAR)
        return "".join(secrets.choice(SALT_CHARS) for _ in range(count))

    def hash(self, password: str | bytes) -> str:
        """Hash ``password`` with a fresh salt and this hasher's parameters.

        Raises:
            TypeError: If ``password`` is not str or bytes.
            ValueError: If ``password`` is a str that cannot be UTF-8 encoded.
            HasherNotAvailable: If the algorithm's library is not installed.
        """
        return self.encode(password, self.salt())

    def decode(self, encoded: str) -> dict[str, Any]:
        """Split an encoded string into Django's fields, checking its bounds.

        Returns:
            Django's ``decode`` keys (``algorithm``, ``salt``, ``hash`` and the
            algorithm's cost parameters), plus ``params`` for Argon2.

        Raises:
            TypeError: If ``encoded`` is not a str.
            ValueError: If ``encoded`` is malformed, is another algorithm's or
                has parameters outside this hasher's bounds. The message says
                which, without quoting the string.
            HasherNotAvailable: If the algorithm's library is not installed.
        """
        check_encoded_type(encoded)
        reason = None
        if len(encoded) > MAX_ENCODED_LENGTH:
            reason = f"longer than {MAX_ENCODED_LENGTH} characters"
        elif not encoded.isascii():
            reason = "not ASCII"  # every Django format is
        elif not encoded.startswith(self._leads()):
            reason = f"it does not start with {' or '.join(map(repr, self._leads()))}"
        else:
            try:
                return self._decode(encoded)
            except _BadHash as exc:
                reason = str(exc)
            except (ValueError, TypeError, IndexError, OverflowError):
                reason = "malformed"
        # Raised here, not in the except clause, so no parser error (whose
        # message may quote part of the string) hangs on as __context__.
        raise ValueError(f"not a readable {self.algorithm} hash: {reason}")

    def _parse(self, encoded: object) -> dict[str, Any] | None:
        """`decode`, or None for anything unreadable (a non-str other than None is a TypeError)."""
        check_encoded_type(encoded, allow_none=True)
        if not isinstance(encoded, str):
            return None  # None: nothing stored
        try:
            return self.decode(encoded)
        except ValueError:  # HasherNotAvailable is an ImportError: it goes through
            return None

    def can_read(self, encoded: str) -> bool:
        """Return whether ``encoded`` is a well-formed, in-bounds hash of this algorithm."""
        return self._parse(encoded) is not None

    def verify(self, password: str | bytes, encoded: str) -> bool:
        """Return whether ``password`` matches ``encoded``; False for anything unreadable.

        A str password with lone surrogates is False too, as no hash can hold
        it, but only after the usual work: a fast answer would show that the
        hash exists.

        Raises:
            TypeError: If ``password`` is not str or bytes, or ``encoded`` is
                neither str nor None.
            HasherNotAvailable: If the algorithm's library is not installed.
        """
        secret, can_match = _work_bytes(password)
        decoded = self._parse(encoded)
        if decoded is None:
            return False
        return self._verify(secret, encoded, decoded) and can_match

    def must_update(self, encoded: str) -> bool:
        """Return whether ``encoded`` has other parameters than new hashes (or a short salt).

        Like Django's, the salt rule applies to PBKDF2, Argon2 and MD5. The
        readers of bare formats answer True for every hash they can read. An
        unreadable string (see the class docstring) answers False.

        Raises:
            TypeError: If ``encoded`` is neither str nor None.
            HasherNotAvailable: If the algorithm's library is not installed.
        """
        decoded = self._parse(encoded)
        return decoded is not None and self._outdated(decoded)

    def harden_runtime(self, password: str | bytes, encoded: str) -> None:
        """Spend the work a weaker stored hash saves, so a wrong password costs as much.

        Like Django, `verify_password` calls this after a wrong password
        against an outdated hash of the preferred algorithm. PBKDF2 runs the
        missing iterations, bcrypt the missing rounds; the others do nothing,
        as in Django. The stored parameters are bounded first, so an absurd or
        unreadable hash costs nothing.

        Raises:
            TypeError: If ``password`` is not str or bytes, or ``encoded`` is
                neither str nor None.
            HasherNotAvailable: If the algorithm's library is not installed.
        """
        secret, _ = _work_bytes(password)
        decoded = self._parse(encoded)
        if decoded is not None:
            self._harden(secret, encoded, decoded)

    def __repr__(self) -> str:
        """Show the class and its cost parameters."""
        params = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"{type(self).__name__}({params})"


#: How much cheaper the hash `Hasher.estimated_seconds` times is than the real one.
SCALE_DOWN = 64

#: `Hasher.estimated_seconds` per (class, parameters); written once per key.
_ESTIMATES: dict[tuple[type[Hasher], tuple[tuple[str, int], ...]], float | None] = {}
