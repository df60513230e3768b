"""The algorithms: password hashers in Django's encoded formats, without Django.

Pure and synchronous: nothing here knows about event loops, pools or Django.
Every encoded string is byte-for-byte what Django's hasher of the same name
makes and reads (``algorithm$...``), so hashes move freely between a Django
database and a FastAPI service.

Two promises beyond Django's:

* ``verify`` never raises for a malformed or hostile encoded string: it
  returns False. Parameters are checked against each class's bounds *before*
  any work, so a stored ``pbkdf2_sha256$1000000000000$...`` or an Argon2 hash
  asking for terabytes cannot turn one login into a denial of service.
* Passwords are ``str`` (encoded as UTF-8, like Django) or ``bytes``; any other
  type is a `TypeError` whose message names the type, never the value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib
import math
import re
import secrets
import string
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from loopsafe.exceptions import HasherNotAvailable, UnknownAlgorithm

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

__all__ = [
    "Argon2Hasher",
    "BCryptHasher",
    "BCryptSHA256Hasher",
    "Hasher",
    "MD5Hasher",
    "PBKDF2Hasher",
    "PBKDF2SHA1Hasher",
    "ScryptHasher",
    "identify_hasher",
    "verify_password",
]

#: Django's salt alphabet (``django.utils.crypto.RANDOM_STRING_CHARS``).
SALT_CHARS = string.ascii_letters + string.digits
_BITS_PER_SALT_CHAR = math.log2(len(SALT_CHARS))
#: No Django hash comes near this; anything longer is not worth parsing.
MAX_ENCODED_LENGTH = 1024
_DIGITS = re.compile(r"[0-9]{1,12}")
_SALT = re.compile(r"[^$]{1,256}")


def to_bytes(password: object) -> bytes:
    """Return the password as bytes: str is UTF-8 encoded, bytes pass through.

    Raises:
        TypeError: If ``password`` is neither str nor bytes.
        ValueError: If a str cannot be UTF-8 encoded (lone surrogates).
    """
    if isinstance(password, bytes):
        return password
    if isinstance(password, str):
        try:
            return password.encode()
        except UnicodeEncodeError:
            # Raised outside the except block: the UnicodeEncodeError's args hold
            # the whole password, and even a suppressed __context__ keeps them.
            pass
        raise ValueError("password is not valid Unicode (it cannot be UTF-8 encoded)")
    raise TypeError(f"password must be str or bytes, not {type(password).__name__}")


def _int_field(text: str, low: int, high: int, what: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"{what} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside [{low}, {high}]")
    return value


def _salt_field(text: str) -> str:
    if not _SALT.fullmatch(text):
        raise ValueError("malformed salt")
    return text


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def must_update_salt(salt: str, expected_entropy: int) -> bool:
    """Return whether ``salt`` carries fewer than ``expected_entropy`` bits (Django's rule)."""
    return len(salt) * _BITS_PER_SALT_CHAR < expected_entropy


class Hasher(ABC):
    """A password hasher in one of Django's formats.

    Subclasses are immutable after construction and safe to share between
    threads. ``verify`` returns False for anything it cannot read.
    """

    #: The prefix of encoded strings, before the first ``$``.
    algorithm: ClassVar[str]
    #: Bits of entropy in a fresh salt (Django: 128).
    salt_entropy: ClassVar[int] = 128
    #: (import name, extra) of the library this algorithm needs, if any.
    library: ClassVar[tuple[str, str] | None] = None

    def _load(self) -> ModuleType:
        if self.library is None:  # pragma: no cover - only called by hashers with a library
            raise RuntimeError(f"{type(self).__name__} needs no library")
        module_name, extra = self.library
        try:
            return importlib.import_module(module_name)
        except ImportError:
            raise HasherNotAvailable(
                f"{self.algorithm} hashes need {extra}: pip install 'loopsafe[{module_name}]'"
            ) from None

    def check_available(self) -> None:
        """Raise `HasherNotAvailable`, naming the extra to install, if the library is missing."""
        if self.library is not None:
            self._load()

    def salt(self) -> str:
        """Return a fresh random salt with at least `salt_entropy` bits, in Django's alphabet."""
        count = math.ceil(self.salt_entropy / _BITS_PER_SALT_CHAR)
        return "".join(secrets.choice(SALT_CHARS) for _ in range(count))

    def hash(self, password: str | bytes) -> str:
        """Hash ``password`` with a fresh salt and this hasher's parameters."""
        return self.encode(password, self.salt())

    @abstractmethod
    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash ``password`` with ``salt`` and this hasher's parameters.

        Raises:
            TypeError: If ``password`` is not str or bytes.
            ValueError: If ``salt`` is empty or contains ``$``.
        """

    @abstractmethod
    def decode(self, encoded: str) -> dict[str, Any]:
        """Parse an encoded string of this algorithm, checking its parameters' bounds.

        Raises:
            ValueError: If ``encoded`` is malformed or its parameters are out of bounds.
        """

    @abstractmethod
    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        """Check a password against an already decoded, in-bounds hash."""

    def _outdated(self, decoded: dict[str, Any]) -> bool:  # noqa: ARG002 - hook
        return False

    def _harden(self, password: bytes, decoded: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Spend the work the stored hash is short of (no-op where Django's is)."""

    @property
    @abstractmethod
    def params(self) -> dict[str, int]:
        """The cost parameters new hashes get."""

    def _decode_checked(self, encoded: object) -> dict[str, Any] | None:
        # Every Django format is ASCII; anything else (a lone surrogate, say)
        # could only make the parsers below raise.
        if not isinstance(encoded, str) or len(encoded) > MAX_ENCODED_LENGTH:
            return None
        if not encoded.isascii():
            return None
        if not encoded.startswith(self.algorithm + "$"):
            return None
        try:
            return self.decode(encoded)
        except (ValueError, TypeError, binascii.Error):
            return None

    def can_read(self, encoded: str) -> bool:
        """Return whether ``encoded`` is a well-formed, in-bounds hash of this algorithm."""
        return self._decode_checked(encoded) is not None

    def verify(self, password: str | bytes, encoded: str) -> bool:
        """Return whether ``password`` matches ``encoded``; False for anything unreadable.

        Raises:
            TypeError: If ``password`` is not str or bytes.
        """
        try:
            secret = to_bytes(password)
        except ValueError:
            return False  # a string no hasher could have hashed matches nothing
        decoded = self._decode_checked(encoded)
        if decoded is None:
            return False
        return self._verify(secret, decoded)

    def must_update(self, encoded: str) -> bool:
        """Return whether ``encoded`` was made with other parameters (or too short a salt).

        A malformed string returns False: there is nothing to update until the
        password has been verified, which it cannot be.
        """
        decoded = self._decode_checked(encoded)
        return decoded is not None and self._outdated(decoded)

    def harden_runtime(self, password: str | bytes, encoded: str) -> None:
        """Spend the work a weaker stored hash saves, so a wrong password costs as much.

        Like Django, this runs after a failed verify of an outdated hash. The
        stored parameters are bounded first, so an absurd hash costs nothing.
        """
        decoded = self._decode_checked(encoded)
        if decoded is None:
            return
        try:
            secret = to_bytes(password)
        except ValueError:
            return
        self._harden(secret, decoded)

    def __repr__(self) -> str:
        """Show the class and its cost parameters."""
        params = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"{type(self).__name__}({params})"

    @staticmethod
    def _check_salt(salt: object) -> str:
        if not isinstance(salt, str) or not salt or "$" in salt:
            raise ValueError("salt must be a non-empty str without '$'")
        return salt


class PBKDF2Hasher(Hasher):
    """PBKDF2-HMAC-SHA256, Django's default (``pbkdf2_sha256$iterations$salt$hash``).

    Args:
        iterations: Defaults to Django 6.1's 1,500,000.
    """

    algorithm: ClassVar[str] = "pbkdf2_sha256"
    digest: ClassVar[str] = "sha256"
    #: Stored hashes above this verify as False without work: 13x Django 6.1's
    #: default leaves a decade of Django's yearly increases and any sane
    #: calibration, while a hostile 10**12 costs nothing.
    max_iterations: ClassVar[int] = 20_000_000

    def __init__(self, iterations: int = 1_500_000) -> None:
        """Set the iteration count for new hashes."""
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise TypeError("iterations must be an int")
        if not 1 <= iterations <= self.max_iterations:
            raise ValueError(f"iterations must be in [1, {self.max_iterations}]")
        self.iterations = iterations

    @property
    def params(self) -> dict[str, int]:
        """The iteration count."""
        return {"iterations": self.iterations}

    def _derive(self, password: bytes, salt: str, iterations: int) -> str:
        raw = hashlib.pbkdf2_hmac(self.digest, password, salt.encode(), iterations)
        return base64.b64encode(raw).decode("ascii").strip()

    def encode(self, password: str | bytes, salt: str, iterations: int | None = None) -> str:
        """Hash with ``salt`` (and, like Django, an optional iteration count)."""
        secret = to_bytes(password)
        salt = self._check_salt(salt)
        iterations = iterations or self.iterations
        return f"{self.algorithm}${iterations}${salt}${self._derive(secret, salt, iterations)}"

    def decode(self, encoded: str) -> dict[str, Any]:
        """Split ``algorithm$iterations$salt$hash``."""
        algorithm, iterations, salt, hash_ = encoded.split("$", 3)
        if algorithm != self.algorithm or not hash_:
            raise ValueError("not a " + self.algorithm + " hash")
        return {
            "algorithm": algorithm,
            "iterations": _int_field(iterations, 1, self.max_iterations, "iterations"),
            "salt": _salt_field(salt),
            "hash": hash_,
        }

    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        again = self._derive(password, decoded["salt"], decoded["iterations"])
        return _same(decoded["hash"], again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        return decoded["iterations"] != self.iterations or must_update_salt(
            decoded["salt"], self.salt_entropy
        )

    def _harden(self, password: bytes, decoded: dict[str, Any]) -> None:
        extra = self.iterations - decoded["iterations"]
        if extra > 0:
            self._derive(password, decoded["salt"], extra)


class PBKDF2SHA1Hasher(PBKDF2Hasher):
    """PBKDF2-HMAC-SHA1 (``pbkdf2_sha1$...``), in Django's default list for old hashes."""

    algorithm: ClassVar[str] = "pbkdf2_sha1"
    digest: ClassVar[str] = "sha1"


_ARGON2_TYPES = {"argon2id": "ID", "argon2i": "I", "argon2d": "D"}


class Argon2Hasher(Hasher):
    """Argon2id through argon2-cffi (``argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash``).

    Args:
        time_cost: Passes over memory (Django: 2).
        memory_cost: KiB of memory per hash (Django: 102400, i.e. 100 MiB).
        parallelism: Lanes (Django: 8; argon2-cffi runs them on threads).
    """

    algorithm: ClassVar[str] = "argon2"
    library: ClassVar[tuple[str, str] | None] = ("argon2", "argon2-cffi")
    #: Bounds for stored hashes: 1 GiB (10x Django's memory), 64 passes and
    #: 64 lanes. A hash beyond them verifies as False without allocating.
    max_memory_cost: ClassVar[int] = 1024 * 1024
    max_time_cost: ClassVar[int] = 64
    max_parallelism: ClassVar[int] = 64

    def __init__(
        self,
        time_cost: int = 2,
        memory_cost: int = 102_400,
        parallelism: int = 8,
    ) -> None:
        """Set the cost of new hashes (the library is loaded on first use)."""
        for name, value, high in (
            ("time_cost", time_cost, self.max_time_cost),
            ("memory_cost", memory_cost, self.max_memory_cost),
            ("parallelism", parallelism, self.max_parallelism),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
            if not 1 <= value <= high:
                raise ValueError(f"{name} must be in [1, {high}]")
        if memory_cost < 8 * parallelism:
            raise ValueError("memory_cost must be at least 8 * parallelism KiB")
        self.time_cost = time_cost
        self.memory_cost = memory_cost
        self.parallelism = parallelism

    @property
    def params(self) -> dict[str, int]:
        """time_cost, memory_cost (KiB) and parallelism."""
        return {
            "time_cost": self.time_cost,
            "memory_cost": self.memory_cost,
            "parallelism": self.parallelism,
        }

    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash with ``salt`` as Django does (argon2id, the salt's bytes, a 32-byte hash)."""
        secret = to_bytes(password)
        salt = self._check_salt(salt)
        argon2 = self._load()
        data = argon2.low_level.hash_secret(
            secret,
            salt.encode(),
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            type=argon2.low_level.Type.ID,
        )
        return self.algorithm + bytes(data).decode("ascii")

    def decode(self, encoded: str) -> dict[str, Any]:
        """Parse with argon2-cffi and check the cost against the bounds."""
        argon2 = self._load()
        algorithm, rest = encoded.split("$", 1)
        if algorithm != self.algorithm:
            raise ValueError("not an argon2 hash")
        params = argon2.extract_parameters("$" + rest)
        variety, *_, b64salt, hash_ = rest.split("$")
        if variety not in _ARGON2_TYPES:
            raise ValueError("unknown argon2 variety")
        if not (
            1 <= params.time_cost <= self.max_time_cost
            and 1 <= params.parallelism <= self.max_parallelism
            and 8 * params.parallelism <= params.memory_cost <= self.max_memory_cost
        ):
            raise ValueError("argon2 parameters out of bounds")
        b64salt += "=" * (-len(b64salt) % 4)
        return {
            "algorithm": algorithm,
            "variety": variety,
            "version": params.version,
            "time_cost": params.time_cost,
            "memory_cost": params.memory_cost,
            "parallelism": params.parallelism,
            "salt": base64.b64decode(b64salt).decode("latin1"),
            "hash": hash_,
            "params": params,
            "stored": ("$" + rest).encode(),
        }

    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        argon2 = self._load()
        kind = getattr(argon2.low_level.Type, _ARGON2_TYPES[decoded["variety"]])
        try:
            return bool(argon2.low_level.verify_secret(decoded["stored"], password, kind))
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        current = decoded["params"]
        argon2 = self._load()
        wanted = argon2.Parameters(
            type=argon2.low_level.Type.ID,
            version=argon2.low_level.ARGON2_VERSION,
            salt_len=current.salt_len,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            time_cost=self.time_cost,
            memory_cost=self.memory_cost,
            parallelism=self.parallelism,
        )
        return bool(current != wanted) or must_update_salt(decoded["salt"], self.salt_entropy)


_BCRYPT_DATA = re.compile(r"\$2[abxy]?\$([0-9]{2})\$[./A-Za-z0-9]{53}")


class BCryptSHA256Hasher(Hasher):
    """bcrypt over a SHA-256 pre-hash (``bcrypt_sha256$$2b$12$...``): no 72-byte limit.

    Args:
        rounds: The log2 cost (Django: 12).
    """

    algorithm: ClassVar[str] = "bcrypt_sha256"
    library: ClassVar[tuple[str, str] | None] = ("bcrypt", "bcrypt")
    prehash: ClassVar[bool] = True
    #: Stored hashes above cost 16 (16x Django's 12, several seconds) verify
    #: as False without work; bcrypt itself would accept up to 31 (hours).
    max_rounds: ClassVar[int] = 16
    #: bcrypt's own minimum cost.
    min_rounds: ClassVar[int] = 4

    def __init__(self, rounds: int = 12) -> None:
        """Set the cost of new hashes."""
        if isinstance(rounds, bool) or not isinstance(rounds, int):
            raise TypeError("rounds must be an int")
        if not self.min_rounds <= rounds <= self.max_rounds:
            raise ValueError(f"rounds must be in [{self.min_rounds}, {self.max_rounds}]")
        self.rounds = rounds

    @property
    def params(self) -> dict[str, int]:
        """The log2 cost."""
        return {"rounds": self.rounds}

    def salt(self) -> str:
        """Return a bcrypt salt (``$2b$12$`` and 22 characters) for this cost."""
        bcrypt = self._load()
        return str(bcrypt.gensalt(self.rounds).decode("ascii"))

    def _secret(self, password: bytes) -> bytes:
        if self.prehash:
            return binascii.hexlify(hashlib.sha256(password).digest())
        if len(password) > 72:  # noqa: PLR2004 - bcrypt's own limit
            raise ValueError(
                "plain bcrypt only reads the first 72 bytes of a password; "
                "use BCryptSHA256Hasher (bcrypt_sha256) for longer passwords"
            )
        return password

    def encode(self, password: str | bytes, salt: str | bytes) -> str:
        """Hash with a bcrypt salt string such as the one `salt` returns."""
        secret = self._secret(to_bytes(password))
        if isinstance(salt, bytes):
            salt = salt.decode("ascii")
        if not re.match(r"\$2[abxy]?\$[0-9]{2}\$", salt):
            raise ValueError("salt must be a bcrypt salt such as bcrypt.gensalt() returns")
        bcrypt = self._load()
        data = bcrypt.hashpw(secret, salt.encode("ascii"))
        return f"{self.algorithm}${data.decode('ascii')}"

    def decode(self, encoded: str) -> dict[str, Any]:
        """Split ``algorithm$$2b$rounds$<salt><checksum>`` and bound the cost."""
        algorithm, data = encoded.split("$", 1)
        match = _BCRYPT_DATA.fullmatch(data)
        if algorithm != self.algorithm or match is None:
            raise ValueError("not a " + self.algorithm + " hash")
        _, algostr, work_factor, rest = data.split("$", 3)
        return {
            "algorithm": algorithm,
            "algostr": algostr,
            "work_factor": _int_field(work_factor, self.min_rounds, self.max_rounds, "rounds"),
            "salt": rest[:22],
            "checksum": rest[22:],
            "data": data,
        }

    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        try:
            secret = self._secret(password)
        except ValueError:
            return False  # over bcrypt's 72 bytes: it could never have been hashed
        bcrypt = self._load()
        data: str = decoded["data"]
        try:
            again = bcrypt.hashpw(secret, data[:29].encode("ascii")).decode("ascii")
        except ValueError:
            return False  # a salt the bcrypt library refuses ("invalid salt")
        return _same(data, again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        return bool(decoded["work_factor"] != self.rounds)

    def _harden(self, password: bytes, decoded: dict[str, Any]) -> None:
        # Cost is logarithmic: one more round doubles the work.
        extra = 2 ** (self.rounds - decoded["work_factor"]) - 1
        if extra <= 0:
            return
        try:
            secret = self._secret(password)
        except ValueError:
            secret = password[:72]
        bcrypt = self._load()
        salt = decoded["data"][:29].encode("ascii")
        try:
            for _ in range(extra):
                bcrypt.hashpw(secret, salt)
        except ValueError:
            return  # a salt the bcrypt library refuses: verify was False without work too


class BCryptHasher(BCryptSHA256Hasher):
    """Plain bcrypt (``bcrypt$$2b$12$...``): passwords over 72 bytes are refused.

    bcrypt 5 raises on them; loopsafe raises a `ValueError` that says to use
    `BCryptSHA256Hasher` when hashing, and verifies them as False.
    """

    algorithm: ClassVar[str] = "bcrypt"
    prehash: ClassVar[bool] = False


class ScryptHasher(Hasher):
    """scrypt through hashlib (``scrypt$N$salt$r$p$hash``).

    Args:
        work_factor: N, a power of two (Django: 2**14).
        block_size: r (Django: 8).
        parallelism: p (Django: 5).
    """

    algorithm: ClassVar[str] = "scrypt"
    #: Stored hashes needing more than 256 MiB (16x Django's 16 MiB) or more
    #: than 64x Django's total work verify as False without work.
    max_memory: ClassVar[int] = 256 * 1024 * 1024
    max_work: ClassVar[int] = 64 * (2**14 * 8 * 5)

    def __init__(self, work_factor: int = 2**14, block_size: int = 8, parallelism: int = 5) -> None:
        """Set the cost of new hashes."""
        for name, value in (
            ("work_factor", work_factor),
            ("block_size", block_size),
            ("parallelism", parallelism),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int")
        self._check_cost(work_factor, block_size, parallelism)
        self.work_factor = work_factor
        self.block_size = block_size
        self.parallelism = parallelism

    @classmethod
    def _check_cost(cls, n: int, r: int, p: int) -> None:
        if n < 2 or n & (n - 1):  # noqa: PLR2004 - scrypt's rule
            raise ValueError("work_factor must be a power of two, at least 2")
        if r < 1 or p < 1:
            raise ValueError("block_size and parallelism must be at least 1")
        if 128 * n * r > cls.max_memory or n * r * p > cls.max_work:
            raise ValueError("scrypt cost out of bounds")

    @property
    def params(self) -> dict[str, int]:
        """N, r and p."""
        return {
            "work_factor": self.work_factor,
            "block_size": self.block_size,
            "parallelism": self.parallelism,
        }

    @staticmethod
    def _derive(password: bytes, salt: str, n: int, r: int, p: int) -> str:
        # OpenSSL's own cap is 32 MiB unless maxmem says more; give what N and
        # r need (bounded above by max_memory), so calibrated costs work too.
        maxmem = 128 * r * (n + p + 2) + 1024 * 1024
        raw = hashlib.scrypt(password, salt=salt.encode(), n=n, r=r, p=p, maxmem=maxmem, dklen=64)
        return base64.b64encode(raw).decode("ascii").strip()

    def encode(self, password: str | bytes, salt: str) -> str:
        """Hash with ``salt`` and this hasher's N, r, p."""
        secret = to_bytes(password)
        salt = self._check_salt(salt)
        n, r, p = self.work_factor, self.block_size, self.parallelism
        return f"{self.algorithm}${n}${salt}${r}${p}${self._derive(secret, salt, n, r, p)}"

    def decode(self, encoded: str) -> dict[str, Any]:
        """Split ``scrypt$N$salt$r$p$hash`` and bound the cost."""
        algorithm, n, salt, r, p, hash_ = encoded.split("$", 5)
        if algorithm != self.algorithm or not hash_:
            raise ValueError("not a scrypt hash")
        work_factor = _int_field(n, 2, 2**24, "work_factor")
        block_size = _int_field(r, 1, 1024, "block_size")
        parallelism = _int_field(p, 1, 1024, "parallelism")
        self._check_cost(work_factor, block_size, parallelism)
        return {
            "algorithm": algorithm,
            "work_factor": work_factor,
            "salt": _salt_field(salt),
            "block_size": block_size,
            "parallelism": parallelism,
            "hash": hash_,
        }

    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        again = self._derive(
            password,
            decoded["salt"],
            decoded["work_factor"],
            decoded["block_size"],
            decoded["parallelism"],
        )
        return _same(decoded["hash"], again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        return bool(
            decoded["work_factor"] != self.work_factor
            or decoded["block_size"] != self.block_size
            or decoded["parallelism"] != self.parallelism
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
        secret = to_bytes(password)
        salt = self._check_salt(salt)
        digest = hashlib.md5(salt.encode() + secret, usedforsecurity=False).hexdigest()
        return f"{self.algorithm}${salt}${digest}"

    def decode(self, encoded: str) -> dict[str, Any]:
        """Split ``md5$salt$hash``."""
        algorithm, salt, hash_ = encoded.split("$", 2)
        if algorithm != self.algorithm or not re.fullmatch(r"[0-9a-f]{32}", hash_):
            raise ValueError("not an md5 hash")
        return {"algorithm": algorithm, "salt": _salt_field(salt), "hash": hash_}

    def _verify(self, password: bytes, decoded: dict[str, Any]) -> bool:
        digest = hashlib.md5(decoded["salt"].encode() + password, usedforsecurity=False)
        return _same(decoded["hash"], digest.hexdigest())

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        return must_update_salt(decoded["salt"], self.salt_entropy)


_ALGORITHM_NAME = re.compile(r"[a-z0-9_]{1,32}")


def identify_hasher(hashers: Sequence[Hasher], encoded: str) -> Hasher:
    """Return the hasher whose algorithm prefixes ``encoded`` (the text before the first ``$``).

    Raises:
        UnknownAlgorithm: If none does. The message names the prefix only
            when it looks like an algorithm name, so a plaintext password
            stored by mistake never reaches a log.
    """
    prefix, dollar, _ = encoded.partition("$")
    for hasher in hashers:
        if dollar and hasher.algorithm == prefix:
            return hasher
    if dollar and _ALGORITHM_NAME.fullmatch(prefix):
        raise UnknownAlgorithm(f"no configured hasher for algorithm {prefix!r}")
    raise UnknownAlgorithm("the encoded string is not in a recognised hash format")


def verify_password(
    hashers: Sequence[Hasher],
    password: str | bytes | None,
    encoded: str | None,
) -> tuple[bool, bool]:
    """Django's ``verify_password`` over ``hashers`` (the first is preferred).

    Returns:
        ``(is_correct, must_update)``. A None password, an unusable
        (``!``-prefixed) or missing hash, and an unidentifiable or corrupt hash run the
        preferred hasher once on a random string and return ``(False, False)``,
        so that they take as long as a real check (Django ticket #20760). A
        wrong password against an outdated hash of the preferred algorithm
        spends the missing work (``harden_runtime``), like Django.

    Raises:
        TypeError: If ``password`` is not str, bytes or None, or ``encoded`` is
            not str or None.
    """
    if password is not None and not isinstance(password, (str, bytes)):
        raise TypeError(f"password must be str or bytes, not {type(password).__name__}")
    if encoded is not None and not isinstance(encoded, str):
        raise TypeError(f"the encoded hash must be str, not {type(encoded).__name__}")
    preferred = hashers[0]
    if password is None or encoded is None or encoded.startswith("!"):
        return _fake_runtime(preferred)
    try:
        hasher = identify_hasher(hashers, encoded)
    except UnknownAlgorithm:
        return _fake_runtime(preferred)
    if not hasher.can_read(encoded):
        # A corrupt hash of a known algorithm costs a hash too, like any other
        # unreadable one: no answer may come back faster than a real check.
        return _fake_runtime(preferred)
    hasher_changed = hasher.algorithm != preferred.algorithm
    must_update = hasher_changed or preferred.must_update(encoded)
    is_correct = hasher.verify(password, encoded)
    if not is_correct and not hasher_changed and must_update:
        preferred.harden_runtime(password, encoded)
    return is_correct, must_update


def _fake_runtime(preferred: Hasher) -> tuple[bool, bool]:
    preferred.hash(secrets.token_urlsafe(30))
    return False, False
