"""loopsafe.django.hashers: Django reads other libraries' bare hashes, then replaces them.

The hashes are made here by the real libraries, at cheap costs: pwdlib 0.3
(``Argon2Hasher``, ``BcryptHasher``), argon2-cffi's ``PasswordHasher``,
``bcrypt.hashpw``, and passlib 1.7.4's ``argon2`` and ``bcrypt`` handlers.
passlib's bcrypt handler cannot load the bcrypt 5 backend (it reads
``bcrypt.__about__`` and trips over bcrypt 5's refusal of long passwords), so
its hashes come from passlib's own pure-Python backend
(``PASSLIB_BUILTIN_BCRYPT=enabled``): the same ``$2b$`` strings.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import hashers
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils.version import get_complete_version

import loopsafe
from loopsafe.django import aauthenticate, acheck_password, averify_password
from loopsafe.django.hashers import (
    BARE_ALGORITHM,
    BareHashPasswordHasher,
    check_password_hashers,
)

PREFERRED = "testproject.hashers.TestPBKDF2PasswordHasher"
BARE = "loopsafe.django.hashers.BareHashPasswordHasher"
ARGON2_ONLY = "loopsafe.django.hashers.PHCArgon2PasswordHasher"
BCRYPT_ONLY = "loopsafe.django.hashers.MCFBCryptPasswordHasher"

DJANGO_VERSION = get_complete_version()


# -- hashes of "pw" made by the real libraries ----------------------------------------


def pwdlib_argon2(password):
    """pwdlib's Argon2Hasher (fastapi-users' default)."""
    from pwdlib.hashers.argon2 import Argon2Hasher

    return Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password)


def pwdlib_bcrypt(password):
    """pwdlib's BcryptHasher."""
    from pwdlib.hashers.bcrypt import BcryptHasher

    return BcryptHasher(rounds=4).hash(password)


def argon2_cffi(password):
    """argon2-cffi's PasswordHasher."""
    import argon2

    return argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=2).hash(password)


def argon2_cffi_argon2i(password):
    """argon2-cffi's PasswordHasher, argon2i."""
    import argon2

    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.I)
    return hasher.hash(password)


def bcrypt_lib(password):
    """bcrypt.hashpw, $2b$."""
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()


def bcrypt_lib_2a(password):
    """bcrypt.hashpw, $2a$."""
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode()


def passlib_argon2(password):
    """passlib's argon2 handler."""
    with warnings.catch_warnings():
        # passlib 1.7.4 reads argon2.__version__, which argon2-cffi deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import argon2

        return argon2.using(rounds=1, memory_cost=1024, parallelism=1).hash(password)


def passlib_bcrypt(password):
    """passlib's bcrypt handler, on its pure-Python backend."""
    import os

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from passlib.hash import bcrypt

        previous = os.environ.get("PASSLIB_BUILTIN_BCRYPT")
        os.environ["PASSLIB_BUILTIN_BCRYPT"] = "enabled"
        try:
            bcrypt.set_backend("builtin")
            return bcrypt.using(rounds=4).hash(password)
        finally:
            if previous is None:
                del os.environ["PASSLIB_BUILTIN_BCRYPT"]
            else:
                os.environ["PASSLIB_BUILTIN_BCRYPT"] = previous


MAKERS = [
    pytest.param(pwdlib_argon2, "$argon2id$", id="pwdlib-argon2"),
    pytest.param(pwdlib_bcrypt, "$2b$", id="pwdlib-bcrypt"),
    pytest.param(argon2_cffi, "$argon2id$", id="argon2-cffi"),
    pytest.param(argon2_cffi_argon2i, "$argon2i$", id="argon2-cffi-argon2i"),
    pytest.param(bcrypt_lib, "$2b$", id="bcrypt"),
    pytest.param(bcrypt_lib_2a, "$2a$", id="bcrypt-2a"),
    pytest.param(passlib_argon2, "$argon2id$", id="passlib-argon2"),
    pytest.param(passlib_bcrypt, "$2b$", id="passlib-bcrypt-builtin"),
]


@pytest.fixture
def bare_hashers():
    """PASSWORD_HASHERS: the test PBKDF2 makes hashes, MD5 and the bare-hash reader verify."""
    configured = [PREFERRED, "django.contrib.auth.hashers.MD5PasswordHasher", BARE]
    with override_settings(PASSWORD_HASHERS=configured):
        yield


# -- how Django finds the hasher ---------------------------------------------------


def test_django_refuses_a_plain_empty_algorithm():
    """Django's get_hashers refuses algorithm "": why BARE_ALGORITHM is a truthy empty string."""

    class Empty(hashers.BasePasswordHasher):
        algorithm = ""

    with override_settings(PASSWORD_HASHERS=[PREFERRED, f"{__name__}.EmptyAlgorithm"]):
        globals()["EmptyAlgorithm"] = Empty
        try:
            with pytest.raises(ImproperlyConfigured):
                hashers.get_hashers()
        finally:
            del globals()["EmptyAlgorithm"]


def test_bare_algorithm_is_the_empty_prefix_but_truthy():
    """BARE_ALGORITHM equals and hashes like "", and is truthy."""
    assert BARE_ALGORITHM == ""
    assert hash(BARE_ALGORITHM) == hash("")
    assert bool(BARE_ALGORITHM)
    assert {BARE_ALGORITHM: 1}[""] == 1


@pytest.mark.parametrize(("make", "prefix"), MAKERS)
def test_django_identify_hasher_finds_it(bare_hashers, make, prefix):
    """Django's own identify_hasher returns the bare-hash hasher for each library's hash."""
    encoded = make("pw")
    assert encoded.startswith(prefix)
    assert isinstance(identify_hasher(encoded), BareHashPasswordHasher)


def test_without_it_django_cannot_read_them():
    """Stock PASSWORD_HASHERS: a bare hash is an unknown algorithm, a failed login."""
    encoded = pwdlib_argon2("pw")
    with pytest.raises(ValueError):
        identify_hasher(encoded)
    assert check_password("pw", encoded) is False


# -- verification with Django's own functions --------------------------------------


@pytest.mark.parametrize(("make", "prefix"), MAKERS)
def test_django_check_password_verifies_and_upgrades(bare_hashers, make, prefix):
    """Django's check_password: right is True and the setter gets a preferred-hasher hash."""
    encoded = make("pw")
    saved = []
    assert check_password("pw", encoded, setter=lambda raw: saved.append(make_password(raw)))
    assert len(saved) == 1
    assert saved[0].startswith("pbkdf2_sha256$")
    assert check_password("pw", saved[0])
    assert check_password("nope", encoded, setter=saved.append) is False
    assert len(saved) == 1


@pytest.mark.anyio
@pytest.mark.skipif(DJANGO_VERSION < (5, 0), reason="Django 4.2 has no acheck_password")
@pytest.mark.parametrize(("make", "prefix"), MAKERS)
async def test_django_acheck_password_verifies_and_upgrades(bare_hashers, make, prefix):
    """Django's own (unpatched) acheck_password reads the bare hash and calls the setter."""
    encoded = make("pw")
    saved = []

    async def setter(raw):
        saved.append(raw)

    assert await hashers.acheck_password("pw", encoded, setter)
    assert saved == ["pw"]
    assert await hashers.acheck_password("nope", encoded, setter) is False


@pytest.mark.anyio
@pytest.mark.parametrize(("make", "prefix"), MAKERS)
async def test_loopsafe_functions_verify_on_the_pool(bare_hashers, make, prefix):
    """loopsafe's averify_password/acheck_password: (True, must_update) from a pool call."""
    encoded = await sync_to_async(make)("pw")
    before = loopsafe.default_pool().statistics().completed
    assert await averify_password("pw", encoded) == (True, True)
    assert await averify_password("nope", encoded) == (False, True)
    assert await acheck_password("pw", encoded)
    assert loopsafe.default_pool().statistics().completed - before == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make", "prefix"),
    [MAKERS[0], MAKERS[1], MAKERS[6]],  # pwdlib argon2, pwdlib bcrypt, passlib argon2
)
async def test_login_migrates_the_stored_hash(bare_hashers, make_user, make, prefix):
    """aauthenticate with the right password stores a preferred-hasher hash in the database."""
    from django.contrib.auth.models import User

    encoded = await sync_to_async(make)("pw")
    await sync_to_async(make_user)("ana", encoded=encoded)
    assert await aauthenticate(username="ana", password="nope") is None
    stored = (await User.objects.aget(username="ana")).password
    assert stored == encoded  # a wrong password changes nothing
    user = await aauthenticate(username="ana", password="pw")
    assert user is not None
    stored = (await User.objects.aget(username="ana")).password
    assert stored.startswith("pbkdf2_sha256$")
    assert await aauthenticate(username="ana", password="pw") is not None


def test_sync_check_password_on_the_user_migrates_too(bare_hashers, make_user):
    """Django's sync User.check_password saves the upgrade, as for any outdated hash."""
    from django.contrib.auth.models import User

    make_user("bo", encoded=bcrypt_lib("pw"))
    user = User.objects.get(username="bo")
    assert user.check_password("pw")
    assert User.objects.get(username="bo").password.startswith("pbkdf2_sha256$")


# -- bounds, foreign strings, narrow classes ----------------------------------------


HOSTILE = [
    pytest.param(
        "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        id="argon2-4TiB",
    ),
    pytest.param(
        "$argon2id$v=19$m=1024,t=4000000000,p=1$c29tZXNhbHRzb21lc2FsdA$"
        "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        id="argon2-huge-time",
    ),
    pytest.param("$2b$31$" + "a" * 21 + "." + "b" * 31, id="bcrypt-cost-31"),
]


@pytest.mark.parametrize("encoded", HOSTILE)
def test_hostile_costs_verify_false_without_the_work(bare_hashers, encoded):
    """Costs beyond PHCArgon2Hasher/MCFBCryptHasher's bounds: False, in well under a second."""
    started = time.perf_counter()
    assert check_password("pw", encoded) is False
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("$6$rounds=5000$salt$" + "x" * 86, id="sha512-crypt"),
        pytest.param("$pbkdf2-sha256$29000$c2FsdA$aGFzaA", id="passlib-pbkdf2"),
        pytest.param("$", id="dollar-only"),
        pytest.param("$argon2id$garbage", id="malformed-argon2"),
        pytest.param("$2b$04$short", id="malformed-bcrypt"),
    ],
)
def test_other_dollar_strings_verify_false(bare_hashers, encoded):
    """Anything else Django routes here for its empty prefix verifies False, never raises."""
    assert check_password("pw", encoded) is False
    if DJANGO_VERSION >= (5, 0):  # Django 4.2 has no verify_password
        assert hashers.verify_password("pw", encoded) == (False, True)


def test_unreadable_string_still_costs_a_hash(bare_hashers, monkeypatch):
    """An unreadable $-string runs the preferred hasher once, like Django's unknown algorithm."""
    calls = []
    real = hashers.make_password
    monkeypatch.setattr(hashers, "make_password", lambda *a: calls.append(1) or real(*a))
    assert check_password("pw", "$6$rounds=5000$salt$" + "x" * 86) is False
    assert calls == [1]


@pytest.mark.parametrize(
    ("path", "readable", "unreadable"),
    [
        pytest.param(ARGON2_ONLY, pwdlib_argon2, bcrypt_lib, id="argon2-only"),
        pytest.param(BCRYPT_ONLY, bcrypt_lib, pwdlib_argon2, id="bcrypt-only"),
    ],
)
def test_narrow_classes_read_their_format_only(path, readable, unreadable):
    """PHCArgon2PasswordHasher and MCFBCryptPasswordHasher read one format each."""
    with override_settings(PASSWORD_HASHERS=[PREFERRED, path]):
        assert check_password("pw", readable("pw"))
        assert check_password("pw", unreadable("pw")) is False


def test_it_makes_no_hashes(bare_hashers):
    """Verify-only: encode, salt and make_password with it raise, saying what to do."""
    hasher = BareHashPasswordHasher()
    with pytest.raises(NotImplementedError, match="first in PASSWORD_HASHERS"):
        hasher.encode("pw", "salt")
    with pytest.raises(NotImplementedError):
        hasher.salt()
    with pytest.raises(NotImplementedError):
        make_password("pw", hasher=hasher)


def test_must_update_and_summary(bare_hashers):
    """must_update is always True; safe_summary masks salt and hash; decode names the format."""
    encoded = pwdlib_argon2("pw")
    hasher = identify_hasher(encoded)
    assert hasher.must_update(encoded) is True
    summary = hasher.safe_summary(encoded)
    assert summary["algorithm"] == "phc_argon2 argon2id"
    salt = encoded.split("$")[4]
    assert salt not in str(summary)
    assert summary["salt"].startswith(salt[:6])
    assert hasher.decode(encoded)["memory_cost"] == 1024
    assert hasher.safe_summary("$6$x") == {"algorithm": "unreadable hash starting with $"}
    with pytest.raises(ValueError) as info:
        hasher.decode("$6$secretish")
    assert "secretish" not in str(info.value)


# -- misconfiguration fails at start-up ----------------------------------------------


@pytest.mark.parametrize(
    ("paths", "match"),
    [
        pytest.param([BARE, PREFERRED], "first", id="reader-first"),
        pytest.param([PREFERRED, ARGON2_ONLY, BCRYPT_ONLY], "only one", id="two-readers"),
        pytest.param([PREFERRED, f"{__name__}.MissingLibraryHasher"], "pip install", id="no-lib"),
    ],
)
def test_check_password_hashers_refuses_mistakes(paths, match):
    """check_password_hashers raises ImproperlyConfigured naming PASSWORD_HASHERS."""
    with pytest.raises(ImproperlyConfigured, match=match) as info:
        check_password_hashers(paths)
    assert "PASSWORD_HASHERS" in str(info.value)


def test_check_password_hashers_accepts_a_good_list():
    """A reader after a hasher that makes hashes passes (and no reader at all does)."""
    check_password_hashers([PREFERRED, BARE])
    check_password_hashers([PREFERRED])


class _MissingLibraryReader(loopsafe.PHCArgon2Hasher):
    library_module = "loopsafe_no_such_module"


class MissingLibraryHasher(BareHashPasswordHasher):
    readers = (_MissingLibraryReader(),)


def test_django_setup_fails_on_a_reader_first():
    """django.setup() with the loopsafe app and a reader first raises before any request."""
    code = (
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(INSTALLED_APPS=['django.contrib.auth',"
        " 'django.contrib.contenttypes', 'loopsafe.django'],"
        f" PASSWORD_HASHERS=[{BARE!r}, 'django.contrib.auth.hashers.PBKDF2PasswordHasher'])\n"
        "django.setup()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "only reads existing hashes" in result.stderr
