"""Compatibility both ways: Django's hashes verify in loopsafe, and loopsafe's in Django.

The first half needs no Django at all: it reads known answers that real
Django's hasher classes made (``tests/vectors/django-*.json``, written by
``tests/vectors/make_vectors.py``). The second half runs Django's own hasher
classes, unconfigured, on hashes loopsafe made; it is skipped without Django.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

import loopsafe
from loopsafe import profiles
from loopsafe.hashers import verify_password

VECTOR_DIR = pathlib.Path(__file__).with_name("vectors")
VECTOR_FILES = sorted(VECTOR_DIR.glob("django-*.json"))
VECTORS = [
    pytest.param(v, id=f"django-{v['django']}-{v['algorithm']}-{v['cost']}-{i}")
    for path in VECTOR_FILES
    for i, v in enumerate(json.loads(path.read_text(encoding="utf-8"))["vectors"])
]

OURS = {
    "pbkdf2_sha256": loopsafe.PBKDF2Hasher,
    "pbkdf2_sha1": loopsafe.PBKDF2SHA1Hasher,
    "argon2": loopsafe.Argon2Hasher,
    "bcrypt_sha256": loopsafe.BCryptSHA256Hasher,
    "bcrypt": loopsafe.BCryptHasher,
    "scrypt": loopsafe.ScryptHasher,
    "md5": loopsafe.MD5Hasher,
}

#: One loopsafe hasher per algorithm at the cheap profile (plain bcrypt and
#: MD5 added, as Django can be configured with them).
CHEAP = {h.algorithm: h for h in profiles.CHEAP.hashers()}
CHEAP["bcrypt"] = loopsafe.BCryptHasher(rounds=4)
CHEAP["md5"] = loopsafe.MD5Hasher()


def test_vectors_cover_every_algorithm():
    """The checked-in vectors cover every algorithm, a non-ASCII password and Django's default."""
    vectors = [p.values[0] for p in VECTORS]
    assert {v["algorithm"] for v in vectors} == set(OURS)
    assert any(not v["password"].isascii() for v in vectors)
    assert any(
        v["algorithm"] == "pbkdf2_sha256"
        and v["django"].startswith("5.2.")
        and v["params"] == {"iterations": 1_000_000}
        for v in vectors
    )


@pytest.mark.parametrize("vector", VECTORS)
def test_django_made_hash_verifies_in_loopsafe(vector):
    """A hash real Django made verifies in loopsafe, at loopsafe's default parameters."""
    hasher = OURS[vector["algorithm"]]()
    assert hasher.verify(vector["password"], vector["encoded"])
    assert hasher.decode(vector["encoded"])["algorithm"] == vector["algorithm"]
    for name, value in vector["params"].items():
        key = "work_factor" if name == "rounds" else name  # Django decodes bcrypt's as work_factor
        assert hasher.decode(vector["encoded"])[key] == value
    if vector["cost"] == "cheap":  # one verify of a default-cost hash is enough
        assert not hasher.verify(vector["password"] + "!", vector["encoded"])
        assert verify_password(list(CHEAP.values()), vector["password"], vector["encoded"]) == (
            True,
            vector["algorithm"] != "pbkdf2_sha256",
        )


def test_vectors_verify_with_django_not_importable():
    """In a fresh interpreter where `import django` fails, every cheap vector still verifies."""
    script = textwrap.dedent(
        """
        import json, sys
        sys.modules["django"] = None  # any import of Django now raises ImportError
        from loopsafe import profiles, BCryptHasher, MD5Hasher
        from loopsafe.hashers import identify_hasher
        hashers = [*profiles.CHEAP.hashers(), BCryptHasher(rounds=4), MD5Hasher()]
        count = 0
        for path in sys.argv[1:]:
            with open(path, encoding="utf-8") as f:
                for v in json.load(f)["vectors"]:
                    if v["cost"] == "cheap":
                        hasher = identify_hasher(hashers, v["encoded"])
                        assert hasher.verify(v["password"], v["encoded"]), v["encoded"]
                        count += 1
        assert "django" not in {m.split(".")[0] for m in sys.modules if sys.modules[m]}
        print(count)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, VECTOR_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == sum(p.values[0]["cost"] == "cheap" for p in VECTORS)


# -- the other way: Django's own classes read loopsafe's hashes -------------------------


def _django_hashers():
    """(Django's hasher, loopsafe's hasher) per algorithm, both at the cheap parameters."""
    pytest.importorskip("django")
    from vectors.make_vectors import cheap_django_hashers

    return {h.algorithm: (h, CHEAP[h.algorithm]) for h in cheap_django_hashers()}


@pytest.mark.parametrize("algorithm", sorted(OURS))
@pytest.mark.parametrize(
    "password",
    [
        pytest.param("pw", id="ascii"),
        pytest.param("pässwörd-🔑", id="non-ascii"),
        pytest.param("", id="empty"),
    ],
)
def test_loopsafe_hash_verifies_in_django(algorithm, password):
    """A hash loopsafe made verifies with Django's own hasher class of the same name."""
    django_hasher, ours = _django_hashers()[algorithm]
    encoded = ours.hash(password)
    assert django_hasher.verify(password, encoded)
    assert not django_hasher.verify(password + "!", encoded)


@pytest.mark.parametrize("algorithm", sorted(OURS))
def test_decode_agrees_with_django(algorithm):
    """decode() gives every field Django's decode() gives, with the same values."""
    django_hasher, ours = _django_hashers()[algorithm]
    encoded = ours.hash("pw")
    theirs = django_hasher.decode(encoded)
    assert {key: ours.decode(encoded)[key] for key in theirs} == theirs


@pytest.mark.parametrize("algorithm", ["pbkdf2_sha256", "pbkdf2_sha1", "scrypt", "md5", "argon2"])
def test_same_salt_same_string(algorithm):
    """With the same salt, loopsafe and Django make the identical encoded string."""
    django_hasher, ours = _django_hashers()[algorithm]
    salt = django_hasher.salt()
    for password in ("pw", "pässwörd-🔑"):
        assert ours.encode(password, salt) == django_hasher.encode(password, salt)


@pytest.mark.parametrize("algorithm", ["bcrypt_sha256", "bcrypt"])
def test_same_bcrypt_salt_same_string(algorithm):
    """With the same bcrypt salt, loopsafe and Django make the identical encoded string."""
    django_hasher, ours = _django_hashers()[algorithm]
    salt = django_hasher.salt()  # bytes, as Django's bcrypt hashers return it
    assert ours.encode("pässwörd-🔑", salt) == django_hasher.encode("pässwörd-🔑", salt)


#: A weaker hasher of each algorithm: its hashes are outdated for the cheap one.
WEAKER = {
    "pbkdf2_sha256": loopsafe.PBKDF2Hasher(iterations=999),
    "pbkdf2_sha1": loopsafe.PBKDF2SHA1Hasher(iterations=999),
    "argon2": loopsafe.Argon2Hasher(time_cost=2, memory_cost=8, parallelism=1),
    "bcrypt_sha256": loopsafe.BCryptSHA256Hasher(rounds=5),
    "bcrypt": loopsafe.BCryptHasher(rounds=5),
    "scrypt": loopsafe.ScryptHasher(work_factor=32, block_size=1, parallelism=1),
    "md5": loopsafe.MD5Hasher(),
}


@pytest.mark.parametrize("algorithm", sorted(OURS))
def test_must_update_agrees_with_django(algorithm):
    """must_update gives Django's answer: same parameters, other parameters, a short salt."""
    django_hasher, ours = _django_hashers()[algorithm]
    same = ours.hash("pw")
    other = WEAKER[algorithm].hash("pw")
    assert ours.must_update(same) is django_hasher.must_update(same) is False
    assert ours.must_update(other) is django_hasher.must_update(other)
    assert ours.must_update(other) is (algorithm != "md5")
    if not algorithm.startswith("bcrypt"):  # bcrypt makes its own salts
        short = ours.encode("pw", "shortsalt1")  # 10 characters: 60 bits
        assert ours.must_update(short) is django_hasher.must_update(short)


def test_real_default_pbkdf2_matches_django():
    """At the installed Django's real default iterations both make the same string."""
    django = pytest.importorskip("django")
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    profile = {
        (4, 2): profiles.DJANGO_4_2,
        (5, 2): profiles.DJANGO_5_2,
        (6, 1): profiles.DJANGO_6_1,
    }.get(django.VERSION[:2])
    if profile is None:
        pytest.skip(f"no loopsafe profile for Django {django.get_version()}")
    django_hasher = PBKDF2PasswordHasher()
    ours = profile.hasher("pbkdf2_sha256")
    assert ours.encode("pw", "fixedsalt") == django_hasher.encode("pw", "fixedsalt")
