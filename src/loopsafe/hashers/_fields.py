"""Field parsers and argument checks shared by every hasher: pure, no algorithm here."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import math
import re
import string
from typing import Any

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
    check_password_type(password)
    if isinstance(password, bytes):
        return password
    try:
        return str(password).encode()  # a str: check_password_type let nothing else by
    except UnicodeEncodeError:
        # Raised below, outside the except block: a UnicodeEncodeError's
        # args hold the whole password, and even a suppressed __context__
        # keeps it reachable from the exception we raise.
        pass
    raise ValueError("password is not valid Unicode (it cannot be UTF-8 encoded)")


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


def check_password_type(password: object, *, allow_none: bool = False) -> None:
    """Raise `TypeError` naming the type (never the value) unless ``password`` is str or bytes."""
    if password is None and allow_none:
        return
    if not isinstance(password, (str, bytes)):
        raise TypeError(f"password must be str or bytes, not {type(password).__name__}")


def check_encoded_type(encoded: object, *, allow_none: bool = False) -> None:
    """Raise `TypeError` naming the type (never the value) unless ``encoded`` is a str."""
    if encoded is None and allow_none:
        return
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


def _unpadded_b64_field(text: str, minimum: int, what: str) -> None:
    """Check that ``text`` is canonical unpadded base64 of ``minimum`` bytes or more."""
    raw = None
    with contextlib.suppress(binascii.Error):
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    if raw is None or len(raw) < minimum or _b64(raw).rstrip("=") != text:
        raise _BadHash(f"the {what} is not unpadded base64 of at least {minimum} bytes")
