"""Regenerate django-<version>.json: hashes made by real Django's own hasher classes.

Run with the Django version to record installed::

    python tests/vectors/make_vectors.py

Django's hasher classes need no configured settings to encode. Cheap
parameters keep the test fast; one PBKDF2 vector uses the version's real
default so the default format is covered too.
"""

from __future__ import annotations

import json
import pathlib

import django
from django.contrib.auth import hashers as dh

PASSWORDS = ["correct horse battery staple", "pässwörd-ünïcode-🔑", "x"]


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
    """The cost parameters of a Django hasher instance."""
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


def main() -> None:
    """Write the vector file for the installed Django version."""
    hashers = cheap_django_hashers()
    vectors = []
    for hasher in hashers:
        for password in PASSWORDS:
            vectors.append(
                {
                    "algorithm": hasher.algorithm,
                    "django": django.get_version(),
                    "params": params(hasher),
                    "password": password,
                    "encoded": hasher.encode(password, hasher.salt()),
                }
            )
    real = dh.PBKDF2PasswordHasher()
    vectors.append(
        {
            "algorithm": real.algorithm,
            "django": django.get_version(),
            "params": params(real),
            "password": PASSWORDS[0],
            "encoded": real.encode(PASSWORDS[0], real.salt()),
        }
    )
    major_minor = ".".join(django.get_version().split(".")[:2])
    out = pathlib.Path(__file__).with_name(f"django-{major_minor}.json")
    out.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {out.name}")  # noqa: T201


if __name__ == "__main__":
    main()
