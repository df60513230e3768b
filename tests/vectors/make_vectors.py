"""Regenerate django-<major.minor>.json: hashes made by real Django's own hasher classes.

Run it with the Django version to record installed (and argon2-cffi, bcrypt)::

    python tests/vectors/make_vectors.py

Django's hasher classes encode without configured settings, so this uses them
directly: subclasses at cheap parameters for most vectors, and the stock
classes at the version's real defaults for one vector per algorithm with a
cost (PBKDF2-SHA256 at 1,000,000 iterations in Django 5.2), so the default
formats are covered too. `tests/test_django_compat.py` checks the file.
"""

from __future__ import annotations

import json
import pathlib

import django
from django.contrib.auth import hashers as dh

ASCII = "correct horse battery staple"
PASSWORDS = [
    ASCII,
    "pässwörd-ünïcode-🔑",  # non-ASCII: 2, 3 and 4 UTF-8 bytes a character
    "",
    "x",
    "long-" * 20,  # 100 bytes: past bcrypt's 72, so bcrypt_sha256's pre-hash matters
]
#: Plain bcrypt refuses passwords over 72 bytes (bcrypt 5 raises): give it exactly 72.
BCRYPT_PASSWORDS = [*PASSWORDS[:4], "b" * 72]


class CheapPBKDF2(dh.PBKDF2PasswordHasher):
    iterations = 1000


class CheapPBKDF2SHA1(dh.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class CheapArgon2(dh.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 8
    parallelism = 1


class CheapBCryptSHA256(dh.BCryptSHA256PasswordHasher):
    rounds = 4


class CheapBCrypt(dh.BCryptPasswordHasher):
    rounds = 4


class CheapScrypt(dh.ScryptPasswordHasher):
    work_factor = 16
    block_size = 1
    parallelism = 1


def params(hasher: dh.BasePasswordHasher) -> dict[str, int]:
    """The cost parameters of a Django hasher instance, by Django's attribute names."""
    names = (
        "iterations",
        "time_cost",
        "memory_cost",
        "parallelism",
        "rounds",
        "work_factor",
        "block_size",
    )
    return {n: getattr(hasher, n) for n in names if isinstance(getattr(hasher, n, None), int)}


def cheap_django_hashers() -> list[dh.BasePasswordHasher]:
    """Django's own hasher classes at cheap parameters, one per algorithm."""
    return [
        CheapPBKDF2(),
        CheapPBKDF2SHA1(),
        CheapArgon2(),
        CheapBCryptSHA256(),
        CheapBCrypt(),
        CheapScrypt(),
        dh.MD5PasswordHasher(),
    ]


def default_django_hashers() -> list[dh.BasePasswordHasher]:
    """Django's stock hasher classes, at the installed version's default parameters."""
    return [
        dh.PBKDF2PasswordHasher(),
        dh.Argon2PasswordHasher(),
        dh.BCryptSHA256PasswordHasher(),
        dh.ScryptPasswordHasher(),
    ]


def vector(hasher: dh.BasePasswordHasher, password: str, cost: str) -> dict[str, object]:
    """One known answer: which Django class made it, with what, from which password."""
    base = next(c for c in type(hasher).__mro__ if c.__module__ == dh.__name__)
    return {
        "algorithm": hasher.algorithm,
        "django": django.get_version(),
        "django_hasher": f"{base.__module__}.{base.__qualname__}",
        "cost": cost,
        "params": params(hasher),
        "password": password,
        "encoded": hasher.encode(password, hasher.salt()),
    }


def main() -> None:
    """Write the vector file for the installed Django version."""
    vectors = []
    for hasher in cheap_django_hashers():
        passwords = BCRYPT_PASSWORDS if hasher.algorithm == "bcrypt" else PASSWORDS
        vectors.extend(vector(hasher, password, "cheap") for password in passwords)
    vectors.extend(vector(hasher, ASCII, "default") for hasher in default_django_hashers())
    major_minor = ".".join(django.get_version().split(".")[:2])
    out = pathlib.Path(__file__).with_name(f"django-{major_minor}.json")
    document = {
        "generator": "tests/vectors/make_vectors.py",
        "django": django.get_version(),
        "vectors": vectors,
    }
    out.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {out.name}")  # noqa: T201


if __name__ == "__main__":
    main()
