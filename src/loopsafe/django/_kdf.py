"""Django's stock PBKDF2 and scrypt hashers, computed on loopsafe's faster KDF backend.

Django's ``PBKDF2PasswordHasher`` (its default), ``PBKDF2SHA1PasswordHasher``
and ``ScryptPasswordHasher`` call ``hashlib``, that is the system's OpenSSL,
which on OpenSSL 3.0 to 3.4 spends about 1.8x the CPU the PBKDF2 needs
(`loopsafe.hashers._kdf`). Here, for those classes only, the same bytes are
computed through `loopsafe.hashers.kdf_backends`' choice, so a site that
changes nothing in ``PASSWORD_HASHERS`` gets the speed.

Each function below is the Django method's code with only the KDF call
swapped, and runs only where the result is provably Django's:

- the hasher is an instance of Django's class whose ``encode``, ``decode``,
  ``verify``, ``harden_runtime``, ``salt`` and ``_check_encode_args`` are
  Django's own functions, looked up on the instance (so a subclass, or a test's
  ``mock.patch.object`` on the instance, that replaces one stays on Django's
  code), with PBKDF2's ``digest`` ``hashlib.sha256`` or ``hashlib.sha1``; a
  subclass that changes only ``algorithm`` or the cost attributes (read at
  call time) qualifies;
- Django's module still calls the functions it was imported with
  (``django.contrib.auth.hashers.pbkdf2``, ``hashlib.scrypt``), so a test's
  mock of them applies;
- the password is a str that encodes to UTF-8 (or bytes, for PBKDF2), the
  salt a non-empty str without ``$`` that encodes too, and the cost within
  loopsafe's bounds (`PBKDF2Hasher.max_iterations`, `ScryptHasher`'s) and,
  for scrypt, within the memory OpenSSL would allow Django's ``maxmem``.

Anything else returns None, and the caller runs Django's own method, with
Django's own answer or exception (or unbounded work), exactly as before.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from django.contrib.auth import hashers as _django_hashers
from django.contrib.auth.hashers import (
    PBKDF2PasswordHasher,
    ScryptPasswordHasher,
)

from loopsafe.hashers import _kdf
from loopsafe.hashers._pbkdf2 import PBKDF2Hasher
from loopsafe.hashers._scrypt import ScryptHasher

__all__ = ["encode", "harden_runtime", "is_stock", "verify"]

# Django's module, read at call time (django-stubs does not list the names it imports).
django_hashers: Any = _django_hashers

_METHODS = ("encode", "decode", "verify", "harden_runtime", "salt", "_check_encode_args")
_DIGESTS = {hashlib.sha256: "sha256", hashlib.sha1: "sha1"}
# What Django's module calls, as imported: a test's mock of either is seen.
_DJANGO_PBKDF2 = django_hashers.pbkdf2
_HASHLIB_SCRYPT = hashlib.scrypt
# OpenSSL's scrypt limit when maxmem is 0 (Django's), and hashlib's largest maxmem.
_OPENSSL_DEFAULT_MAXMEM = 32 * 1024 * 1024
_INT_MAX = 2**31 - 1
_MIN_N = 2
_ABSENT = object()


def _unmodified(hasher: object, base: type) -> bool:
    """Whether every method in `_METHODS` is ``base``'s own function, seen from the instance."""
    return all(
        getattr(getattr(hasher, name, None), "__func__", None) is getattr(base, name, _ABSENT)
        for name in _METHODS
    )


def _kind(hasher: object) -> str | None:
    """``pbkdf2`` or ``scrypt`` for a hasher computed here, else None."""
    if isinstance(hasher, PBKDF2PasswordHasher):
        if (
            django_hashers.pbkdf2 is _DJANGO_PBKDF2
            and getattr(hasher, "digest", None) in _DIGESTS
            and _unmodified(hasher, PBKDF2PasswordHasher)
        ):
            return "pbkdf2"
    elif (
        isinstance(hasher, ScryptPasswordHasher)
        and django_hashers.hashlib is hashlib
        and hashlib.scrypt is _HASHLIB_SCRYPT
        and _unmodified(hasher, ScryptPasswordHasher)
    ):
        return "scrypt"
    return None


def is_stock(hasher: object) -> bool:
    """Whether ``hasher`` is Django's PBKDF2 or scrypt hasher, computed here."""
    return _kind(hasher) is not None


def _text(value: object) -> bytes | None:
    """UTF-8 of a str, or None (Django would raise, or do something else)."""
    if not isinstance(value, str):
        return None
    try:
        return value.encode()
    except UnicodeEncodeError:
        return None


def _salt(salt: object) -> bytes | None:
    """The salt's bytes, where Django's ``_check_encode_args`` would pass it and it is a str."""
    if not isinstance(salt, str) or not salt or "$" in salt:
        return None
    return _text(salt)


def _is_int(value: object) -> bool:
    return type(value) is int


def _pbkdf2_encode(hasher: Any, password: object, salt: object, iterations: object) -> str | None:
    """``PBKDF2PasswordHasher.encode``, or None."""
    secret = password if isinstance(password, bytes) else _text(password)
    salt_bytes = _salt(salt)
    count: Any = iterations or hasher.iterations
    if secret is None or salt_bytes is None or not _is_int(count):
        return None
    if not 1 <= count <= PBKDF2Hasher.max_iterations:
        return None
    digest = _DIGESTS[hasher.digest]
    derived = _kdf.pbkdf2_hmac(digest, secret, salt_bytes, count)
    hash_ = base64.b64encode(derived).decode("ascii").strip()
    return "%s$%d$%s$%s" % (hasher.algorithm, count, salt, hash_)  # noqa: UP031 - Django's own formatting, for the same bytes


def _scrypt_fits(hasher: Any, n: int, r: int, p: int) -> bool:
    """Whether hashlib would compute scrypt(N, r, p) with Django's ``maxmem``, within our bounds."""
    maxmem = hasher.maxmem
    if not (_is_int(n) and _is_int(r) and _is_int(p) and _is_int(maxmem)):
        return False
    if n < _MIN_N or r < 1 or p < 1 or ScryptHasher._cost_problem(n, r, p) is not None:  # noqa: SLF001 - the hasher's own bounds
        return False
    if not 0 <= maxmem <= _INT_MAX or n >= 2 ** (16 * r):  # OpenSSL: N < 2^(128 r / 8)
        return False
    # OpenSSL's own sum: the p blocks and V with two spare blocks.
    return 128 * r * p + 128 * r * (n + 2) <= (maxmem or _OPENSSL_DEFAULT_MAXMEM)


def _scrypt_encode(  # noqa: PLR0917 - Django's encode(password, salt, n, r, p)
    hasher: Any, password: object, salt: object, n: Any = None, r: Any = None, p: Any = None
) -> str | None:
    """``ScryptPasswordHasher.encode``, or None."""
    secret, salt_bytes = _text(password), _salt(salt)
    n = n or hasher.work_factor
    r = r or hasher.block_size
    p = p or hasher.parallelism
    if secret is None or salt_bytes is None or not _scrypt_fits(hasher, n, r, p):
        return None
    hash_ = base64.b64encode(_kdf.scrypt(secret, salt_bytes, n, r, p)).decode("ascii").strip()
    return "%s$%d$%s$%d$%d$%s" % (hasher.algorithm, n, salt, r, p, hash_)  # noqa: UP031 - Django's own formatting


def _decode(hasher: Any, kind: str, encoded: object) -> list[Any] | None:
    """Django's ``decode`` fields in order (costs as ints), or None where it would fail."""
    if not isinstance(encoded, str):
        return None
    fields: list[Any] = encoded.split("$", 3 if kind == "pbkdf2" else 6)
    if len(fields) != (4 if kind == "pbkdf2" else 6) or fields[0] != hasher.algorithm:
        return None
    costs = (1,) if kind == "pbkdf2" else (1, 3, 4)
    try:
        for index in costs:
            fields[index] = int(fields[index])
    except ValueError:
        return None
    return fields


def encode(hasher: Any, password: object, salt: object) -> str | None:
    """``hasher.encode(password, salt)`` computed here, or None to let Django compute it."""
    kind = _kind(hasher)
    if kind == "pbkdf2":
        return _pbkdf2_encode(hasher, password, salt, None)
    if kind == "scrypt":
        return _scrypt_encode(hasher, password, salt)
    return None


def verify(hasher: Any, password: object, encoded: object) -> bool | None:
    """``hasher.verify(password, encoded)`` computed here, or None to let Django compute it."""
    kind = _kind(hasher)
    fields = None if kind is None else _decode(hasher, kind, encoded)
    if fields is None:
        return None
    if kind == "pbkdf2":
        _, iterations, salt, _ = fields
        again = _pbkdf2_encode(hasher, password, salt, iterations)
    else:
        _, n, salt, r, p, _ = fields
        again = _scrypt_encode(hasher, password, salt, n, r, p)
    if again is None:
        return None
    return bool(django_hashers.constant_time_compare(encoded, again))


def harden_runtime(hasher: Any, password: object, encoded: object) -> bool:
    """``hasher.harden_runtime(password, encoded)`` done here; False to let Django do it.

    PBKDF2's extra iterations run on the same backend as its verification, so
    a wrong password costs what a right one does. Django's scrypt hasher does
    nothing here, and neither does this (it answers False: Django's no-op runs).
    """
    if _kind(hasher) != "pbkdf2":
        return False
    fields = _decode(hasher, "pbkdf2", encoded)
    if fields is None:
        return False
    _, iterations, salt, _ = fields
    extra = hasher.iterations - iterations
    if extra > 0 and _pbkdf2_encode(hasher, password, salt, extra) is None:
        hasher.encode(password, salt, extra)  # Django's own, with its own errors
    return True
