"""The algorithms: password hashers in Django's encoded formats, without Django.

Pure and synchronous: nothing here knows about event loops, pools or Django.
Every encoded string is byte-for-byte what Django's hasher of the same name
makes and reads (``algorithm$...``), so hashes move freely between a Django
database and a FastAPI service. Django 5.2's ``django/contrib/auth/hashers.py``
is the reference for the formats and for `verify_password`.

Three promises beyond Django's:

* ``verify`` never raises for a malformed or hostile encoded string: it
  returns False. Parameters are checked against each class's bounds
  (``max_iterations``, ``max_memory_cost``, ``max_rounds``...) *before* any
  work, so a stored ``pbkdf2_sha256$1000000000000$...`` or an Argon2 hash asking
  for terabytes cannot turn one login into a denial of service. The bounds are
  class attributes: a site that really uses more subclasses and raises them.
* Passwords are ``str`` (encoded as UTF-8, like Django) or ``bytes``; any other
  type is a `TypeError` whose message names the type, never the value.
* No exception message or repr made here contains a password, and none quotes
  an encoded string (a plaintext password stored by mistake would be one).

Two verify-only readers, `PHCArgon2Hasher` and `MCFBCryptHasher`, take the
bare strings other libraries store (``$argon2id$...`` from argon2-cffi, pwdlib
or passlib; ``$2b$...`` from bcrypt), under the same bounds, so that users of
those libraries can move: every such hash needs an update, and the next correct
login replaces it with a Django-format one.

argon2-cffi and bcrypt are optional: they are imported on first use (Python
then keeps them in ``sys.modules``), and a hasher that needs a missing one
raises `HasherNotAvailable`, naming the extra to install, when it is used.
Constructing one never imports anything, so a profile's full hasher list can be
built on a core-only install; call `Hasher.check_available` to fail early.
"""

# ruff: noqa: PLC0415 - argon2 and bcrypt are optional: imported where used, on first use

from __future__ import annotations

import base64
import binascii
import contextlib
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
    from collections.abc import Iterator, Sequence

__all__ = [
    "Argon2Hasher",
    "BCryptHasher",
    "BCryptSHA256Hasher",
    "Hasher",
    "MCFBCryptHasher",
    "MD5Hasher",
    "PBKDF2Hasher",
    "PBKDF2SHA1Hasher",
    "PHCArgon2Hasher",
    "ScryptHasher",
    "identify_hasher",
    "verify_password",
]

#: Django's salt alphabet (``django.utils.crypto.RANDOM_STRING_CHARS``).
SALT_CHARS = string.ascii_letters + string.digits
_BITS_PER_SALT_CHAR = math.log2(len(SALT_CHARS))
#: Longer encoded strings are refused unread. Django stores hashes in a
#: 128-character column and its longest default format is about 100 characters.
MAX_ENCODED_LENGTH = 1024
#: Django's prefix for unusable passwords (``User.set_unusable_password()``).
UNUSABLE_PASSWORD_PREFIX = "!"  # noqa: S105 - a marker, not a password
#: Algorithm names Django has shipped. `identify_hasher` names an unknown
#: prefix in its message only if it is one of these: any other prefix may be
#: the start of a plaintext password stored by mistake.
_DJANGO_ALGORITHMS = frozenset(
    {
        "argon2",
        "bcrypt",
        "bcrypt_sha256",
        "crypt",
        "md5",
        "pbkdf2_sha1",
        "pbkdf2_sha256",
        "scrypt",
        "sha1",
        "unsalted_md5",
        "unsalted_sha1",
    }
)
# Plain decimal, as Django's "%d" writes it: no sign, no leading zero, ASCII only.
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,11}")
_SALT = re.compile(r"[^$]{1,256}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BCRYPT_SALT = re.compile(r"\$(2[abxy])\$([0-9]{2})\$([./A-Za-z0-9]{22})")
_BCRYPT_DATA = re.compile(_BCRYPT_SALT.pattern + r"([./A-Za-z0-9]{31})")
# Argon2's PHC format: unpadded base64, and the C library's minimum tag of 4 bytes.
_ARGON2_TAG = re.compile(r"[A-Za-z0-9+/]{6,}")
_MD5_HEX = re.compile(r"[0-9a-f]{32}")
#: bcrypt reads this many bytes of a password and ignores the rest.
_BCRYPT_MAX_PASSWORD = 72


class _BadHash(ValueError):
    """An encoded string this hasher cannot read; the message never quotes it."""


def _password_bytes(password: object) -> bytes:
    """Return the password as bytes: str is UTF-8 encoded, bytes pass through.

    Raises:
        TypeError: If ``password`` is neither str nor bytes.
        ValueError: If a str cannot be UTF-8 encoded (it holds lone surrogates).
    """
    if isinstance(password, bytes):
        return password
    if isinstance(password, str):
        try:
            return password.encode()
        except UnicodeEncodeError:
            # Raised below, outside the except block: a UnicodeEncodeError's
            # args hold the whole password, and even a suppressed __context__
            # keeps it reachable from the exception we raise.
            pass
        raise ValueError("password is not valid Unicode (it cannot be UTF-8 encoded)")
    raise TypeError(f"password must be str or bytes, not {type(password).__name__}")


def _work_bytes(password: object) -> tuple[bytes, bool]:
    """Return bytes to spend a check's work on, and whether they can match at all.

    A str that cannot be UTF-8 encoded matches nothing, but the check still
    runs (on its "surrogatepass" bytes) so that it takes as long as any wrong
    password: answering at once would tell an attacker the account exists.

    Raises:
        TypeError: If ``password`` is neither str nor bytes.
    """
    try:
        return _password_bytes(password), True
    except ValueError:
        pass
    return str(password).encode("utf-8", "surrogatepass"), False


def _check_encoded_type(encoded: object) -> None:
    if not isinstance(encoded, str):
        raise TypeError(f"the encoded hash must be str, not {type(encoded).__name__}")


def _check_cost(name: str, value: object, low: int, high: int) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}]")
    return value


def _check_salt(salt: object) -> str:
    if not isinstance(salt, str):
        raise TypeError(f"salt must be str, not {type(salt).__name__}")
    if not salt or "$" in salt:
        raise ValueError("salt must be a non-empty str without '$'")
    return salt


def _int_field(text: str, low: int, high: int, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise _BadHash(f"{what} is not a plain decimal number")
    value = int(text)
    if not low <= value <= high:
        raise _BadHash(f"{what} is outside this hasher's bounds [{low}, {high}]")
    return value


def _salt_field(text: str) -> str:
    if not _SALT.fullmatch(text):
        raise _BadHash("the salt is empty or too long")
    return text


def _hash_field(text: str, size: int) -> str:
    """Check that ``text`` is standard base64 of ``size`` bytes, as Django writes a digest."""
    if len(text) != 4 * math.ceil(size / 3) or not _BASE64.fullmatch(text):
        raise _BadHash(f"the hash is not base64 of {size} bytes")
    return text


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _same(stored: str, computed: str) -> bool:
    """Compare in constant time (both are ASCII: encoded strings are checked first)."""
    return hmac.compare_digest(stored.encode("ascii"), computed.encode("ascii"))


def _must_update_salt(salt: str, expected_entropy: int) -> bool:
    """Return whether ``salt`` carries fewer than ``expected_entropy`` bits (Django's rule)."""
    return len(salt) * _BITS_PER_SALT_CHAR < expected_entropy


def _bcrypt_fields(algorithm: str, match: re.Match[str], low: int, high: int) -> dict[str, Any]:
    """The decoded fields of a bcrypt string matched as (version, cost, salt, checksum)."""
    algostr, work_factor, salt, checksum = match.groups()
    return {
        "algorithm": algorithm,
        "algostr": algostr,
        "checksum": checksum,
        "salt": salt,
        "work_factor": _int_field(work_factor.removeprefix("0"), low, high, "cost"),
    }


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

    @property
    @abstractmethod
    def params(self) -> dict[str, int]:
        """The cost parameters new hashes get, by Django's attribute names."""

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
        _check_encoded_type(encoded)
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
        if encoded is None:
            return None
        if not isinstance(encoded, str):
            raise TypeError(f"the encoded hash must be str, not {type(encoded).__name__}")
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


class PBKDF2Hasher(Hasher):
    """PBKDF2-HMAC-SHA256, Django's default (``pbkdf2_sha256$iterations$salt$hash``).

    Args:
        iterations: For new hashes. Defaults to Django 6.1's 1,500,000.
    """

    algorithm: ClassVar[str] = "pbkdf2_sha256"
    #: The hashlib name of the PRF's digest.
    digest: ClassVar[str] = "sha256"
    #: Stored hashes above this verify as False without work. 13x Django
    #: 6.1's default (about 5 s on one core of the test machine, where the
    #: default takes 0.36 s) leaves room for a decade of Django's increases
    #: and any site's own tuning, while a hostile 10**12 costs nothing.
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

    def _derive(self, password: bytes, salt: str, iterations: int) -> str:
        return _b64(hashlib.pbkdf2_hmac(self.digest, password, salt.encode(), iterations))

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


class Argon2Hasher(Hasher):
    """Argon2id through argon2-cffi (``argon2$argon2id$v=19$m=..,t=..,p=..$salt$hash``).

    Made like Django's: argon2-cffi's low-level ``hash_secret`` with the salt
    string's bytes and a 32-byte hash. Stored argon2i and argon2d hashes verify too.

    Args:
        time_cost: Passes over memory (Django: 2).
        memory_cost: KiB of memory per hash (Django: 102400, i.e. 100 MiB).
        parallelism: Lanes (Django: 8).
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
    #: 8x Django's 8 lanes; every lane is a thread in the C library.
    max_parallelism: ClassVar[int] = 64
    #: time_cost x memory_cost, in KiB passes: twice RFC 9106's high-memory
    #: profile (1 pass over 2 GiB) and 20x Django's, about 9 s on the 2-core
    #: test machine, where Django's default takes 0.11 s.
    max_work: ClassVar[int] = 4 * 1024 * 1024
    #: The C library's minimum (``ARGON2_MIN_SALT_LENGTH``).
    min_salt_length: ClassVar[int] = 8

    def __init__(
        self,
        *,
        time_cost: int = 2,
        memory_cost: int = 102_400,
        parallelism: int = 8,
    ) -> None:
        """Set the cost of new hashes (the library is imported on first use)."""
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

    @property
    def params(self) -> dict[str, int]:
        """time_cost, memory_cost (KiB) and parallelism."""
        return {
            "time_cost": self._time_cost,
            "memory_cost": self._memory_cost,
            "parallelism": self._parallelism,
        }

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
        data = argon2.low_level.hash_secret(
            secret,
            salt.encode(),
            time_cost=self._time_cost,
            memory_cost=self._memory_cost,
            parallelism=self._parallelism,
            hash_len=argon2.DEFAULT_HASH_LENGTH,
            type=argon2.low_level.Type.ID,
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
        if not (
            1 <= params.time_cost <= self.max_time_cost
            and 1 <= params.parallelism <= self.max_parallelism
            and 8 * params.parallelism <= params.memory_cost <= self.max_memory_cost
            and params.time_cost * params.memory_cost <= self.max_work
        ):
            raise _BadHash("argon2 cost outside this hasher's bounds")
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
            import argon2
        kind = argon2.low_level.Type[decoded["variety"].removeprefix("argon2").upper()]
        stored = encoded[len(self.algorithm) :].encode("ascii")
        try:
            return argon2.low_level.verify_secret(stored, password, kind)
        except argon2.exceptions.VerificationError:
            # A mismatch, or a string the C library refuses to decode.
            return False

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
    #: Stored hashes above cost 16 (16x Django's 12: about 4 s here, where
    #: cost 12 takes 0.24 s) verify as False without work; bcrypt itself
    #: would run cost 31 (about 4 days).
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

    @property
    def params(self) -> dict[str, int]:
        """The log2 cost."""
        return {"rounds": self._rounds}

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


class ScryptHasher(Hasher):
    """scrypt through hashlib (``scrypt$N$salt$r$p$hash``).

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
    #: 64x Django's (about 13 s here, where Django's default takes 0.2 s).
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

    @property
    def params(self) -> dict[str, int]:
        """N, r and p, by Django's names."""
        return {
            "work_factor": self._work_factor,
            "block_size": self._block_size,
            "parallelism": self._parallelism,
        }

    @staticmethod
    def _derive(password: bytes, salt: str, n: int, r: int, p: int) -> str:
        # OpenSSL refuses more than 32 MiB unless maxmem says otherwise (Django
        # leaves it at that); allow what N, r and p need, bounded by the class.
        maxmem = 128 * r * (n + p + 2) + 1024 * 1024
        return _b64(
            hashlib.scrypt(password, salt=salt.encode(), n=n, r=r, p=p, maxmem=maxmem, dklen=64)
        )

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
        try:
            again = self._derive(
                password,
                decoded["salt"],
                decoded["work_factor"],
                decoded["block_size"],
                decoded["parallelism"],
            )
        except (ValueError, MemoryError):
            return False  # OpenSSL could not allocate what the (in-bounds) hash asks
        return _same(decoded["hash"], again)

    def _outdated(self, decoded: dict[str, Any]) -> bool:
        # Django's scrypt hasher compares N, r and p, not the salt.
        return bool(
            decoded["work_factor"] != self._work_factor
            or decoded["block_size"] != self._block_size
            or decoded["parallelism"] != self._parallelism
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


# -- readers of other libraries' formats, for migrating to Django's ------------------------


def _unpadded_b64_field(text: str, minimum: int, what: str) -> None:
    """Check that ``text`` is canonical unpadded base64 of ``minimum`` bytes or more."""
    raw = None
    with contextlib.suppress(binascii.Error):
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    if raw is None or len(raw) < minimum or _b64(raw).rstrip("=") != text:
        raise _BadHash(f"the {what} is not unpadded base64 of at least {minimum} bytes")


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
    `Argon2Hasher`'s bounds, so a hostile hash verifies as False without work.

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

    def _decode(self, encoded: str) -> dict[str, Any]:
        match = _PHC_ARGON2.fullmatch(encoded)
        if match is None:
            raise _BadHash("not '$argon2id$', 'v=19$', 'm=..,t=..,p=..', a salt and a hash")
        variety, version, memory, time, lanes, salt, hash_ = match.groups()
        time_cost = _int_field(time, 1, self.max_time_cost, "time_cost")
        parallelism = _int_field(lanes, 1, self.max_parallelism, "parallelism")
        memory_cost = _int_field(memory, 8 * parallelism, self.max_memory_cost, "memory_cost")
        if time_cost * memory_cost > self.max_work:
            raise _BadHash(f"time_cost * memory_cost is over this hasher's bound {self.max_work}")
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
            import argon2
        kind = argon2.low_level.Type[decoded["variety"].removeprefix("argon2").upper()]
        try:
            return argon2.low_level.verify_secret(encoded.encode("ascii"), password, kind)
        except argon2.exceptions.VerificationError:
            # A mismatch, or a string the C library refuses to decode.
            return False


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
    #: without work (bcrypt itself would run cost 31, about 4 days).
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


def identify_hasher(hashers: Sequence[Hasher], encoded: str) -> Hasher:
    """Return the first hasher whose algorithm is the text before ``encoded``'s first ``$``.

    Django's rule, without its legacy unsalted MD5/SHA-1 guesses; a string with
    no ``$`` is no hash of any algorithm here. The readers of bare formats
    (`PHCArgon2Hasher`, `MCFBCryptHasher`), whose strings start with ``$``,
    match by their `Hasher.prefixes` instead (``$argon2id$``, ``$2b$``...), so
    ``bcrypt_sha256$$2b$...`` is still `BCryptSHA256Hasher`'s.

    Raises:
        TypeError: If ``encoded`` is not a str.
        UnknownAlgorithm: If no hasher matches. The message names the prefix
            only when it is an algorithm Django ships or a bare format's, so a
            plaintext password stored by mistake never reaches a log.
    """
    _check_encoded_type(encoded)
    prefix, dollar, _ = encoded.partition("$")
    if dollar:
        for hasher in hashers:
            if encoded.startswith(hasher._leads()):  # noqa: SLF001 - this module's own class
                return hasher
    if dollar and prefix in _DJANGO_ALGORITHMS:
        raise UnknownAlgorithm(f"no configured hasher for algorithm {prefix!r}")
    for reader in _READERS:
        for lead in reader.prefixes:
            if encoded.startswith(lead):
                raise UnknownAlgorithm(
                    f"no configured hasher reads {lead!r} hashes; add {reader.__name__}()"
                )
    raise UnknownAlgorithm("the encoded string does not start with a known algorithm name")


def verify_password(
    hashers: Sequence[Hasher],
    password: str | bytes | None,
    encoded: str | None,
) -> tuple[bool, bool]:
    """Django 5.2's ``verify_password`` over ``hashers``, the first being the preferred one.

    A None password, a None or unusable (``!``-prefixed) hash, or one no hasher
    can read run the preferred hasher's ``hash`` once on a random string and
    return ``(False, False)``, so they take as long as a real check (Django
    ticket #20760). Otherwise ``must_update`` is whether the algorithm differs
    from the preferred one or the preferred hasher's ``must_update``; a wrong
    password against an outdated hash of the preferred algorithm also spends
    the missing work (``harden_runtime``).

    One departure: Django raises for a hash of a configured algorithm that its
    hasher cannot parse; here that is one more unreadable hash, ``(False, False)``.

    Returns:
        ``(is_correct, must_update)``.

    Raises:
        TypeError: If ``password`` is not str, bytes or None, or ``encoded`` is
            not str or None.
        ValueError: If ``hashers`` is empty or its first hasher is verify-only.
        HasherNotAvailable: If the hasher that must run needs a missing library.
    """
    if password is not None and not isinstance(password, (str, bytes)):
        raise TypeError(f"password must be str or bytes, not {type(password).__name__}")
    if encoded is not None:
        _check_encoded_type(encoded)
    if not hashers:
        raise ValueError("verify_password needs at least one hasher")
    preferred = hashers[0]
    if preferred.verify_only:
        raise ValueError(f"the first hasher makes hashes: {type(preferred).__name__} cannot")
    if password is None or encoded is None or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
        return _fake_runtime(preferred)
    try:
        hasher = identify_hasher(hashers, encoded)
    except UnknownAlgorithm:
        return _fake_runtime(preferred)
    if not hasher.can_read(encoded):
        return _fake_runtime(preferred)
    hasher_changed = hasher.algorithm != preferred.algorithm
    must_update = hasher_changed or preferred.must_update(encoded)
    is_correct = hasher.verify(password, encoded)
    if not is_correct and not hasher_changed and must_update:
        hasher.harden_runtime(password, encoded)
    return is_correct, must_update


def _fake_runtime(preferred: Hasher) -> tuple[bool, bool]:
    # Django hashes get_random_string(40); token_urlsafe(30) is 40 characters.
    preferred.hash(secrets.token_urlsafe(30))
    return False, False
