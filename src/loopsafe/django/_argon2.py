"""Django's stock ``Argon2PasswordHasher``, computed without lane threads on the pool.

Django's ``Argon2PasswordHasher`` calls argon2-cffi's ``hash_secret`` and
``PasswordHasher().verify``, which start one thread per lane: 8 at Django's
defaults, for every hash, next to the pool's one worker per core. Here, for
that class only, the same computation runs through loopsafe's Argon2 core
(`loopsafe.hashers._argon2_core`), which computes the lanes on the worker's
own thread and gives byte-identical output; this is the one place the Django
integration computes a hash itself instead of calling the site's hasher.

It does so only where the result is provably Django's:

- the hasher's ``encode``, ``verify``, ``params`` and ``_load_library`` are
  Django's own functions and its ``library`` is ``"argon2"`` (the stock
  class, or a subclass that changes only the cost attributes, which
  ``params()`` reads at call time);
- for a verification, the stored string starts with the hasher's algorithm
  and a header argon2-cffi knows, is ASCII, and its parameters (parsed from
  the string) are within `loopsafe.Argon2Hasher`'s bounds;
- for a hash, the password is a str that encodes to UTF-8, and the
  parameters are within the same bounds.

Anything else returns None, and the caller runs Django's own method, with
Django's own answer or exception, exactly as before.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import Argon2PasswordHasher

from loopsafe.hashers._argon2 import Argon2Hasher, argon2_threads

__all__ = ["encode", "is_stock", "verify"]

_DJANGO_METHODS = ("encode", "verify", "params", "_load_library")
# argon2-cffi's PasswordHasher picks the type from the first 9 bytes.
_HEADERS = {"$argon2i$": "I", "$argon2d$": "D", "$argon2id": "ID"}


def is_stock(hasher: object) -> bool:
    """Whether ``hasher`` computes exactly as Django's ``Argon2PasswordHasher`` does."""
    cls = type(hasher)
    return isinstance(hasher, Argon2PasswordHasher) and (
        cls is Argon2PasswordHasher
        or (
            all(
                getattr(cls, name) is getattr(Argon2PasswordHasher, name)
                for name in _DJANGO_METHODS
            )
            and getattr(hasher, "library", None) == Argon2PasswordHasher.library
        )
    )


def _within_bounds(time_cost: int, memory_cost: int, parallelism: int) -> bool:
    return (
        1 <= time_cost <= Argon2Hasher.max_time_cost
        and 1 <= parallelism <= Argon2Hasher.max_parallelism
        and 8 * parallelism <= memory_cost <= Argon2Hasher.max_memory_cost
        and time_cost * memory_cost <= Argon2Hasher.max_work
    )


def verify(hasher: Any, password: object, encoded: object) -> bool | None:  # noqa: PLR0911 - one early return per way Django's answer could differ
    """``hasher.verify(password, encoded)`` computed here, or None to let Django compute it."""
    if not is_stock(hasher) or not isinstance(encoded, str):
        return None
    algorithm, sep, rest = encoded.partition("$")
    if not sep or algorithm != hasher.algorithm or not rest.isascii():
        return None
    phc = "$" + rest
    kind_name = _HEADERS.get(phc[:9])
    if kind_name is None:
        return None  # argon2-cffi raises InvalidHashError: Django's method does too
    if isinstance(password, str):
        try:
            secret = password.encode("utf-8")
        except UnicodeEncodeError:
            return None
    elif isinstance(password, bytes):
        secret = password
    else:
        return None
    from argon2.low_level import Type

    from loopsafe.hashers import _argon2_core

    decoded = _argon2_core.decode(phc)
    if decoded is None:
        # The C library refuses the string: argon2-cffi raises VerificationError,
        # which Django's verify turns into False.
        return False
    if not _within_bounds(decoded.time_cost, decoded.memory_cost, decoded.parallelism):
        return None
    kind = Type[kind_name]
    if decoded.type != kind:
        return False
    threads = argon2_threads(None, decoded.parallelism)
    return _argon2_core.verify_decoded(secret, decoded, threads=threads)


def encode(hasher: Any, password: object, salt: object) -> str | None:
    """``hasher.encode(password, salt)`` computed here, or None to let Django compute it."""
    if not is_stock(hasher) or not isinstance(password, str) or not isinstance(salt, str):
        return None
    try:
        secret, salt_bytes = password.encode(), salt.encode()
    except UnicodeEncodeError:
        return None
    params = hasher.params()
    if not _within_bounds(params.time_cost, params.memory_cost, params.parallelism):
        return None
    from loopsafe.hashers import _argon2_core

    data = _argon2_core.hash_encoded(
        secret,
        salt_bytes,
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        type=params.type,
        threads=argon2_threads(None, params.parallelism),
    )
    return str(hasher.algorithm) + data.decode("ascii")
