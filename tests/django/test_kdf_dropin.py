"""Django's stock PBKDF2 and scrypt hashers on loopsafe's KDF backend: Django's answers, faster.

For ``PBKDF2PasswordHasher``, ``PBKDF2SHA1PasswordHasher`` and
``ScryptPasswordHasher`` (or subclasses that only set costs), loopsafe
computes the hash itself (`loopsafe.django._kdf`). Every test compares with
what the installed Django's own method answers or raises for the same input,
with each KDF backend forced, and hashes travel both ways: made by loopsafe,
verified by Django, and the other way round.
"""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
from django.contrib.auth import hashers
from django.contrib.auth.hashers import (
    MD5PasswordHasher,
    PBKDF2PasswordHasher,
    PBKDF2SHA1PasswordHasher,
    ScryptPasswordHasher,
    check_password,
    make_password,
)
from django.test import override_settings
from test_argon2_dropin import outcome
from testproject.hashers import TestPBKDF2PasswordHasher

from loopsafe.django import _kdf as django_kdf
from loopsafe.django import _passwords, acheck_password, amake_password
from loopsafe.hashers import PBKDF2Hasher, ScryptHasher, _kdf

HAS_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
BACKEND_PARAMS = [
    pytest.param("hashlib", id="hashlib"),
    pytest.param(
        "cryptography",
        id="cryptography",
        marks=pytest.mark.skipif(not HAS_CRYPTOGRAPHY, reason="cryptography not installed"),
    ),
]


class CheapPBKDF2(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 at a test cost: only the cost changes."""

    iterations = 1000


class CheapPBKDF2SHA1(PBKDF2SHA1PasswordHasher):
    """Django's PBKDF2-SHA1 at a test cost."""

    iterations = 1000


class CheapScrypt(ScryptPasswordHasher):
    """Django's scrypt at a test cost (N=256), Django's r and p."""

    work_factor = 2**8


class RenamedPBKDF2(CheapPBKDF2):
    """A site's own algorithm name over Django's code: still Django's answer."""

    algorithm = "pbkdf2_site"


class OwnEncodePBKDF2(CheapPBKDF2):
    """A subclass with its own ``encode``: Django's (the site's) code must run."""

    def encode(self, password, salt, iterations=None):
        """Encode as Django does (the override alone makes it the site's code)."""
        return super().encode(password, salt, iterations)


class OwnSaltPBKDF2(CheapPBKDF2):
    """A subclass with its own ``salt``."""

    def salt(self):
        """A fixed salt (the override alone makes it the site's code)."""
        return "fixedsalt"


class SHA512PBKDF2(CheapPBKDF2):
    """Another digest under a new name: hashlib through Django, not loopsafe."""

    algorithm = "pbkdf2_sha512"
    digest = hashlib.sha512


class BigMemoryScrypt(CheapScrypt):
    """N=2^15, r=8: 32 MiB plus, more than OpenSSL allows Django's ``maxmem=0``."""

    work_factor = 2**15


@pytest.fixture
def forced(request, monkeypatch):
    """Force the KDF backend named by the test's parameter."""
    monkeypatch.setenv(_kdf.ENV_VARIABLE, request.param)
    _kdf._reset()
    yield request.param
    _kdf._reset()


@pytest.mark.parametrize(
    ("hasher", "stock"),
    [
        pytest.param(PBKDF2PasswordHasher(), True, id="pbkdf2-sha256"),
        pytest.param(PBKDF2SHA1PasswordHasher(), True, id="pbkdf2-sha1"),
        pytest.param(ScryptPasswordHasher(), True, id="scrypt"),
        pytest.param(CheapPBKDF2(), True, id="costs-only-subclass"),
        pytest.param(TestPBKDF2PasswordHasher(), True, id="testproject-subclass"),
        pytest.param(RenamedPBKDF2(), True, id="renamed"),
        pytest.param(OwnEncodePBKDF2(), False, id="own-encode"),
        pytest.param(OwnSaltPBKDF2(), False, id="own-salt"),
        pytest.param(SHA512PBKDF2(), False, id="other-digest"),
        pytest.param(MD5PasswordHasher(), False, id="md5"),
    ],
)
def test_which_hashers_are_stock(hasher, stock):
    """Only Django's classes, or subclasses changing costs or the name, are computed by loopsafe."""
    assert django_kdf.is_stock(hasher) is stock


def test_an_instance_level_mock_keeps_djangos_code(monkeypatch):
    """A test's mock of one method on the instance makes loopsafe run Django's code."""
    hasher = CheapPBKDF2()
    monkeypatch.setattr(hasher, "harden_runtime", lambda *args: None)
    assert not django_kdf.is_stock(hasher)


def test_a_mocked_django_pbkdf2_keeps_djangos_code(monkeypatch):
    """A mock of django.contrib.auth.hashers.pbkdf2 applies: loopsafe does not compute."""
    monkeypatch.setattr(hashers, "pbkdf2", lambda *args, **kwargs: b"\0" * 32)
    assert not django_kdf.is_stock(CheapPBKDF2())


PASSWORDS = [
    pytest.param("pw", id="right"),
    pytest.param("wrong", id="wrong"),
    pytest.param("", id="empty"),
    pytest.param("pässwörd-🔑", id="non-ascii"),
    pytest.param("z" * 3000, id="long"),
    pytest.param(b"pw", id="bytes"),
    pytest.param("p\udc80w", id="lone-surrogate"),
    pytest.param(None, id="none"),
    pytest.param(12345, id="int"),
]


def _pbkdf2_stored() -> list[object]:
    hasher = CheapPBKDF2()
    good = hasher.encode("pw", "seasalt")
    cases = [
        pytest.param(good, id="django-1000"),
        pytest.param(hasher.encode("pw", "seasalt", 1), id="one-iteration"),
        pytest.param(hasher.encode("pw", "x" * 100, 2500), id="long-salt"),
        pytest.param(hasher.encode("pw", "sälz", 10), id="non-ascii-salt"),
        pytest.param(good.replace("$1000$", "$0$"), id="zero-iterations"),
        pytest.param(good.replace("$1000$", "$ 1000$"), id="spaced-iterations"),
        pytest.param(good.replace("$1000$", "$-5$"), id="negative-iterations"),
        pytest.param(good.replace("$1000$", "$x$"), id="non-numeric"),
        pytest.param(good.replace("$1000$", "$100000000000$"), id="over-bound"),
        pytest.param(good.replace("pbkdf2_sha256", "pbkdf2_sha1"), id="other-algorithm"),
        pytest.param(good + "$extra", id="extra-field"),
        pytest.param("pbkdf2_sha256$1000", id="short"),
        pytest.param(good[:-4], id="truncated"),
    ]
    return [pytest.param(CheapPBKDF2, *case.values, id=f"pbkdf2-{case.id}") for case in cases]


def _scrypt_stored() -> list[object]:
    hasher = CheapScrypt()
    good = hasher.encode("pw", "seasalt")
    cases = [
        pytest.param(good, id="django-N256"),
        pytest.param(hasher.encode("pw", "seasalt", 2**10, 8, 1), id="N1024-p1"),
        pytest.param(hasher.encode("pw", "seasalt", 16, 1, 2), id="r1"),
        pytest.param(good.replace("$256$", "$255$"), id="not-power-of-two"),
        pytest.param(good.replace("$256$", "$33554432$"), id="over-bound"),
        pytest.param(good.replace("$256$", "$32768$"), id="over-openssl-maxmem"),
        pytest.param(good.replace("$256$", "$0$"), id="zero-n"),
        pytest.param(good + "$x", id="extra-field"),
        pytest.param(good[:-4], id="truncated"),
        pytest.param("scrypt$256$salt", id="short"),
    ]
    return [pytest.param(CheapScrypt, *case.values, id=f"scrypt-{case.id}") for case in cases]


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(("hasher_class", "encoded"), _pbkdf2_stored() + _scrypt_stored())
def test_verify_answers_as_django(forced, hasher_class, encoded, password):
    """loopsafe's verification of a stored PBKDF2 or scrypt hash answers (or raises) as Django's."""
    hasher = hasher_class()
    expected = outcome(hasher.verify, password, encoded)
    assert outcome(_passwords._hasher_verify, hasher, password, encoded) == expected


ENCODE_CASES = [
    pytest.param("correct horse", "seasalt", id="ascii"),
    pytest.param("", "seasalt", id="empty"),
    pytest.param("pässwörd-🔑", "Zm9vYmFyYmF6cXV4", id="non-ascii"),
    pytest.param("q" * 5000, "seasalt", id="long"),
    pytest.param(b"raw \xff bytes", "seasalt", id="bytes"),
    pytest.param("pw", "sälz", id="non-ascii-salt"),
    pytest.param("pw", "a$b", id="dollar-salt"),
]


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize(("password", "salt"), ENCODE_CASES)
@pytest.mark.parametrize("hasher_class", [CheapPBKDF2, CheapPBKDF2SHA1, CheapScrypt, RenamedPBKDF2])
def test_make_password_makes_djangos_string(forced, hasher_class, password, salt):
    """loopsafe's make_password gives Django's make_password's string (or its exception)."""
    hasher = hasher_class()
    expected = outcome(hasher.encode, password, salt)
    with override_settings(PASSWORD_HASHERS=[f"{__name__}.{hasher_class.__name__}"]):
        assert outcome(_passwords._make, password, salt) == expected


@pytest.mark.parametrize("salt", [pytest.param("", id="empty"), pytest.param(b"bytes", id="bytes")])
@pytest.mark.parametrize("hasher_class", [CheapPBKDF2, CheapScrypt])
def test_salts_django_reads_otherwise_are_left_to_django(hasher_class, salt):
    """An empty or bytes salt is not computed here: Django's own encode answers for it."""
    assert django_kdf.encode(hasher_class(), "pw", salt) is None


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@pytest.mark.parametrize("iterations", [1, 2, 999, 20_000])
@pytest.mark.parametrize("hasher_class", [CheapPBKDF2, CheapPBKDF2SHA1])
def test_pbkdf2_both_ways_over_iteration_counts(forced, hasher_class, iterations):
    """A loopsafe hash verifies in Django and Django's verifies in loopsafe, at any count."""
    django_hasher = hasher_class()
    ours = django_kdf._pbkdf2_encode(django_hasher, "pässwort", "seasalt", iterations)
    assert ours == django_hasher.encode("pässwort", "seasalt", iterations)
    assert django_hasher.verify("pässwort", ours)
    loopsafe_hasher = PBKDF2Hasher if django_hasher.digest is hashlib.sha256 else None
    if loopsafe_hasher is not None:
        assert loopsafe_hasher(iterations=iterations).verify("pässwort", ours)
        made = loopsafe_hasher(iterations=iterations).encode("pässwort", "otherSalt")
        assert django_kdf.verify(django_hasher, "pässwort", made) is True
        assert django_hasher.verify("pässwort", made)


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
def test_scrypt_both_ways(forced):
    """A loopsafe scrypt hash verifies in Django and Django's verifies in loopsafe."""
    django_hasher = CheapScrypt()
    loopsafe_hasher = ScryptHasher(work_factor=2**8, block_size=8, parallelism=5)
    made_by_django = django_hasher.encode("pässwort", "seasalt")
    assert loopsafe_hasher.verify("pässwort", made_by_django)
    made_here = loopsafe_hasher.encode("pässwort", "otherSalt")
    assert django_hasher.verify("pässwort", made_here)
    assert django_kdf.verify(django_hasher, "pässwort", made_here) is True


@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@override_settings(PASSWORD_HASHERS=[f"{__name__}.CheapPBKDF2"])
def test_stock_hashes_are_computed_on_the_chosen_backend(forced, monkeypatch):
    """Verify, make and harden of Django's stock PBKDF2 all run on loopsafe's KDF, not Django's."""
    calls: list[int] = []
    real = _kdf.pbkdf2_hmac

    def counting(digest, password, salt, iterations):
        calls.append(iterations)
        return real(digest, password, salt, iterations)

    monkeypatch.setattr(_kdf, "pbkdf2_hmac", counting)
    encoded = _passwords._make("pw")
    assert check_password("pw", encoded)
    assert _passwords._verify("pw", encoded, "default") == (True, False)
    old = CheapPBKDF2().encode("pw", "seasalt", 400)
    # A wrong password against an outdated hash spends the missing iterations
    # on the same backend, so it costs what a right one does.
    assert _passwords._verify("wrong", old, "default") == (False, True)
    assert calls == [1000, 1000, 400, 600]


@pytest.mark.anyio
@pytest.mark.parametrize("forced", BACKEND_PARAMS, indirect=True)
@override_settings(
    PASSWORD_HASHERS=[f"{__name__}.CheapPBKDF2", f"{__name__}.CheapScrypt"],
)
async def test_async_functions_agree_with_django(forced):
    """acheck_password and amake_password on the pool give Django's answers for stock hashers."""
    made = await amake_password("pässwort")
    assert made.startswith("pbkdf2_sha256$1000$")
    assert check_password("pässwort", made)
    scrypt = make_password("pässwort", hasher="scrypt")
    assert await acheck_password("pässwort", scrypt)
    assert not await acheck_password("Pässwort", scrypt)
