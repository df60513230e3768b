"""Regenerate argon2-lanes.json: Argon2 hashes at 1 to 16 lanes, made by Django and argon2-cffi.

loopsafe computes Argon2 lanes with fewer threads than lanes; these hashes,
made the usual way (argon2-cffi starts one thread per lane), pin that the
bytes are the same. Run it with Django and argon2-cffi installed::

    python tests/vectors/make_argon2_lanes.py

Django's ``Argon2PasswordHasher`` encodes without configured settings, so
subclasses set the lanes (and cheap time and memory costs). argon2-cffi's
``low_level.hash_secret`` makes the argon2i and argon2d hashes, and version
16 ones, which Django never makes. `tests/test_argon2_threads.py` checks the file.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import pathlib

import django
from argon2.low_level import Type, hash_secret
from django.contrib.auth import hashers as dh

PASSWORDS = ["correct horse battery staple", "pässwörd-ünïcode-🔑", ""]
LANES = [1, 2, 4, 8, 16]
#: Salts made once with os.urandom and base64 (Django's salts are text).
SALTS = ["dS1uLnVbR2tXZ2hXeGs4Ng", "UmFuZG9tU2FsdEZvckxhbmVz", "c29tZXNhbHRzb21lc2FsdA"]


def django_vectors() -> list[dict[str, object]]:
    """Django's stock Argon2 encode, at each lane count, cheap time and memory."""
    out: list[dict[str, object]] = []
    for lanes in LANES:
        hasher_cls = type(
            f"Argon2Lanes{lanes}",
            (dh.Argon2PasswordHasher,),
            {"time_cost": 1, "memory_cost": 16 * lanes, "parallelism": lanes},
        )
        for password, salt in zip(PASSWORDS, SALTS, strict=True):
            out.append(
                {
                    "made_by": f"Django {django.get_version()} Argon2PasswordHasher.encode",
                    "params": {"time_cost": 1, "memory_cost": 16 * lanes, "parallelism": lanes},
                    "password": password,
                    "salt": salt,
                    "encoded": hasher_cls().encode(password, salt),
                }
            )
    return out


def cffi_vectors() -> list[dict[str, object]]:
    """argon2-cffi's hash_secret: argon2id, argon2i and argon2d, versions 19 and 16."""
    version = importlib.metadata.version("argon2-cffi")
    out: list[dict[str, object]] = []
    for kind in (Type.ID, Type.I, Type.D):
        for argon2_version in (19, 16):
            for lanes in LANES:
                password, salt = PASSWORDS[lanes % 2], f"salt-for-{lanes}-lanes".encode()
                encoded = hash_secret(
                    password.encode(),
                    salt,
                    time_cost=2,
                    memory_cost=8 * lanes + 8,
                    parallelism=lanes,
                    hash_len=16 + lanes,
                    type=kind,
                    version=argon2_version,
                )
                out.append(
                    {
                        "made_by": f"argon2-cffi {version} low_level.hash_secret",
                        "params": {
                            "type": kind.name,
                            "version": argon2_version,
                            "time_cost": 2,
                            "memory_cost": 8 * lanes + 8,
                            "parallelism": lanes,
                            "hash_len": 16 + lanes,
                        },
                        "password": password,
                        "salt_b64": base64.b64encode(salt).decode(),
                        "encoded": encoded.decode("ascii"),
                    }
                )
    return out


def main() -> None:
    """Write the JSON file next to this script."""
    path = pathlib.Path(__file__).with_name("argon2-lanes.json")
    data = {"django": django_vectors(), "argon2_cffi": cffi_vectors()}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.name}")  # noqa: T201 - a script's one line of output


if __name__ == "__main__":
    main()
