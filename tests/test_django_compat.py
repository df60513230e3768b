"""Compatibility both ways: Django's hashes verify in loopsafe, and loopsafe's in Django."""

from __future__ import annotations

import json
import pathlib

import pytest

import loopsafe
from loopsafe import profiles

VECTOR_DIR = pathlib.Path(__file__).with_name("vectors")
VECTORS = [
    pytest.param(v, id=f"django-{v['django']}-{v['algorithm']}-{i}")
    for path in sorted(VECTOR_DIR.glob("django-*.json"))
    for i, v in enumerate(json.loads(path.read_text(encoding="utf-8")))
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


def test_vectors_exist():
    """At least one vector file, covering every algorithm, is checked in."""
    assert {v.values[0]["algorithm"] for v in VECTORS} == set(OURS)


@pytest.mark.parametrize("vector", VECTORS)
def test_django_made_hash_verifies_without_django(vector):
    """A hash real Django made verifies in loopsafe, with no Django settings involved."""
    hasher = OURS[vector["algorithm"]]()
    assert hasher.verify(vector["password"], vector["encoded"])
    assert not hasher.verify(vector["password"] + "!", vector["encoded"])
    ph = loopsafe.PasswordHash(
        [*profiles.CHEAP.hashers(), loopsafe.BCryptHasher(4), loopsafe.MD5Hasher()]
    )
    assert ph.verify(vector["password"], vector["encoded"])


def _django_hashers():
    """(Django's hasher, loopsafe's hasher) per algorithm, both at the cheap parameters."""
    pytest.importorskip("django")
    from vectors.make_vectors import cheap_django_hashers

    ours = {h.algorithm: h for h in profiles.CHEAP.hashers()}
    ours["bcrypt"] = loopsafe.BCryptHasher(4)
    ours["md5"] = loopsafe.MD5Hasher()
    return {h.algorithm: (h, ours[h.algorithm]) for h in cheap_django_hashers()}


@pytest.mark.parametrize("algorithm", sorted(OURS))
@pytest.mark.parametrize("password", ["pw", "pässwörd-🔑"], ids=["ascii", "unicode"])
def test_loopsafe_hash_verifies_in_django(algorithm, password):
    """A hash loopsafe made verifies with Django's own hasher class of the same name."""
    django_hasher, ours = _django_hashers()[algorithm]
    encoded = ours.hash(password)
    assert django_hasher.verify(password, encoded)
    assert not django_hasher.verify(password + "!", encoded)
    assert django_hasher.decode(encoded)["algorithm"] == algorithm


@pytest.mark.parametrize("algorithm", ["pbkdf2_sha256", "pbkdf2_sha1", "scrypt", "md5"])
def test_same_salt_same_string(algorithm):
    """For salted-string algorithms, loopsafe and Django produce the identical encoded string."""
    django_hasher, ours = _django_hashers()[algorithm]
    salt = django_hasher.salt()
    assert ours.encode("pw", salt) == django_hasher.encode("pw", salt)


@pytest.mark.parametrize("algorithm", sorted(OURS))
def test_must_update_agrees_with_django(algorithm):
    """must_update gives Django's answer for a hash at the same and at other parameters."""
    django_hasher, ours = _django_hashers()[algorithm]
    same = ours.hash("pw")
    assert ours.must_update(same) == django_hasher.must_update(same)
    weaker = {
        "pbkdf2_sha256": loopsafe.PBKDF2Hasher(999),
        "pbkdf2_sha1": loopsafe.PBKDF2SHA1Hasher(999),
        "argon2": loopsafe.Argon2Hasher(2, 8, 1),
        "bcrypt_sha256": loopsafe.BCryptSHA256Hasher(5),
        "bcrypt": loopsafe.BCryptHasher(5),
        "scrypt": loopsafe.ScryptHasher(32, 1, 1),
        "md5": loopsafe.MD5Hasher(),
    }[algorithm]
    other = weaker.hash("pw")
    assert ours.must_update(other) == django_hasher.must_update(other)
    if algorithm != "md5":
        assert ours.must_update(other)
