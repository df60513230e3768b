"""Django's stock Argon2 hasher on the pool: loopsafe's lane computation, Django's answers.

For a site whose ``PASSWORD_HASHERS`` holds Django's ``Argon2PasswordHasher``
(or a subclass that only sets its costs), loopsafe computes that hasher's
work itself, without lane threads. Every test here compares with what
Django's own method answers or raises for the same input.
"""

from __future__ import annotations

import pytest
from argon2.low_level import Type, hash_secret
from django.contrib.auth import hashers
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    MD5PasswordHasher,
    check_password,
)
from django.test import override_settings
from testproject.hashers import CheapArgon2PasswordHasher, OwnEncodeArgon2PasswordHasher

from loopsafe.django import _argon2, _passwords, amake_password, averify_password
from loopsafe.django._passwords import acheck_user_password
from loopsafe.hashers import _argon2_core

CHEAP = "testproject.hashers.CheapArgon2PasswordHasher"
OWN = "testproject.hashers.OwnEncodeArgon2PasswordHasher"
PBKDF2 = "testproject.hashers.TestPBKDF2PasswordHasher"


def _phc(kind: Type, lanes: int, password: bytes = b"pw", version: int = 19) -> str:
    return hash_secret(
        password,
        b"somesaltsomesalt",
        time_cost=1,
        memory_cost=16 * lanes,
        parallelism=lanes,
        hash_len=32,
        type=kind,
        version=version,
    ).decode("ascii")


def _stored() -> list[object]:
    """Stored strings: Django's format at 1-16 lanes, other types, broken and out-of-bounds ones."""
    cases = [
        pytest.param("argon2" + _phc(Type.ID, lanes), id=f"argon2id-p{lanes}")
        for lanes in (1, 2, 4, 8, 16)
    ]
    good = "argon2" + _phc(Type.ID, 2)
    head, salt, tag = good.rsplit("$", 2)
    cases += [
        pytest.param("argon2" + _phc(Type.I, 4), id="argon2i"),
        pytest.param("argon2" + _phc(Type.D, 4), id="argon2d"),
        pytest.param("argon2" + _phc(Type.ID, 4, version=16).replace("$v=16", ""), id="v16"),
        pytest.param(head + "$" + salt + "$" + tag + "A", id="tag-4n+1"),
        pytest.param(good.replace("$argon2id$", "$argon2x$"), id="unknown-type"),
        pytest.param(good.replace("p=2", "p=65"), id="lanes-over-bound"),
        pytest.param(good.replace("m=32", "m=31"), id="memory-under-lanes"),
        pytest.param(good + "é", id="non-ascii"),
        pytest.param("argon2", id="no-dollar"),
    ]
    return cases


PASSWORDS = [
    pytest.param("pw", id="right"),
    pytest.param("wrong", id="wrong"),
    pytest.param(b"pw", id="bytes"),
    pytest.param("p\udc80w", id="lone-surrogate"),
]


def _django_verify_password(password: str, encoded: str) -> tuple[bool, bool]:
    """Django's verify_password, or on Django 4.2 the same two answers built from its parts."""
    verify = getattr(hashers, "verify_password", None)
    if verify is not None:
        return verify(password, encoded)
    preferred = hashers.get_hasher("default")
    changed = hashers.identify_hasher(encoded).algorithm != preferred.algorithm
    return check_password(password, encoded), changed or preferred.must_update(encoded)


def outcome(fn, *args):
    """Return ("value", result) or ("raises", exception type) of a call."""
    try:
        return "value", fn(*args)
    except Exception as exc:  # noqa: BLE001 - the type is the answer
        return "raises", type(exc)


@pytest.mark.parametrize(
    ("hasher", "stock"),
    [
        pytest.param(Argon2PasswordHasher(), True, id="stock"),
        pytest.param(CheapArgon2PasswordHasher(), True, id="costs-only-subclass"),
        pytest.param(OwnEncodeArgon2PasswordHasher(), False, id="own-encode"),
        pytest.param(MD5PasswordHasher(), False, id="md5"),
    ],
)
def test_which_hashers_are_stock(hasher: object, stock: bool) -> None:  # noqa: FBT001 - a parameter
    """Only Django's Argon2 class, or a subclass changing only costs, is computed by loopsafe."""
    assert _argon2.is_stock(hasher) is stock


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("encoded", _stored())
def test_verify_answers_as_django(encoded: str, password: object) -> None:
    """loopsafe's verification of a stored hash answers (or raises) as Django's own verify."""
    hasher = CheapArgon2PasswordHasher()
    expected = outcome(hasher.verify, password, encoded)
    assert outcome(_passwords._hasher_verify, hasher, password, encoded) == expected


@pytest.mark.parametrize(
    ("password", "salt"),
    [
        pytest.param("correct horse", "somesaltsomesalt", id="ascii"),
        pytest.param("pässwörd-🔑", "Zm9vYmFyYmF6cXV4", id="non-ascii"),
        pytest.param("", "somesaltsomesalt", id="empty"),
        pytest.param("pw", "short", id="salt-under-8-bytes"),
    ],
)
def test_encode_is_djangos(password: str, salt: str) -> None:
    """loopsafe's encode gives Django's string (or Django's exception)."""
    hasher = CheapArgon2PasswordHasher()
    expected = outcome(hasher.encode, password, salt)
    ours = outcome(lambda: _argon2.encode(hasher, password, salt) or hasher.encode(password, salt))
    assert ours == expected


def test_encode_at_djangos_defaults() -> None:
    """At Django's defaults (t=2, 100 MiB, 8 lanes) the stock class's hash is remade exactly."""
    hasher = Argon2PasswordHasher()
    made = _argon2.encode(hasher, "correct horse battery staple", "VExpbzRxMEw2NTNuWEd2NFN4UVJOZA")
    assert made == hasher.encode("correct horse battery staple", "VExpbzRxMEw2NTNuWEd2NFN4UVJOZA")


def test_other_types_fall_back_to_django() -> None:
    """A bytes password or a foreign hasher is left to Django (None)."""
    assert _argon2.encode(CheapArgon2PasswordHasher(), b"pw", "somesaltsomesalt") is None
    assert _argon2.encode(OwnEncodeArgon2PasswordHasher(), "pw", "somesaltsomesalt") is None
    assert _argon2.verify(MD5PasswordHasher(), "pw", "md5$x$y") is None


pytestmark = pytest.mark.anyio


class _Spy:
    """Counts calls of the core's computations (the real ones run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        for name in ("verify_decoded", "hash_encoded"):
            real = getattr(_argon2_core, name)

            def counted(*args, _real=real, **kwargs):
                self.calls += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(_argon2_core, name, counted)


@override_settings(PASSWORD_HASHERS=[CHEAP, PBKDF2])
async def test_async_functions_compute_stock_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """amake_password and averify_password go through loopsafe's core, with Django's answers."""
    spy = _Spy(monkeypatch)
    encoded = await amake_password("pw")
    assert spy.calls == 1
    assert check_password("pw", encoded)
    assert await averify_password("pw", encoded) == (True, False)
    assert await averify_password("nope", encoded) == (False, False)
    assert spy.calls == 3
    # A hash with other costs must be updated, as Django says.
    other = "argon2" + _phc(Type.ID, 4)
    assert await averify_password("pw", other) == _django_verify_password("pw", other)


@override_settings(PASSWORD_HASHERS=[CHEAP, PBKDF2])
async def test_user_upgrade_makes_the_new_hash_in_the_core(make_user, monkeypatch) -> None:
    """An outdated hash is replaced by a stock-Argon2 one made by loopsafe's core."""
    from asgiref.sync import sync_to_async

    with override_settings(PASSWORD_HASHERS=[PBKDF2]):
        user = await sync_to_async(make_user)("upgrader", password="pw")
    spy = _Spy(monkeypatch)
    assert await acheck_user_password(user, "pw")
    assert user.password.startswith("argon2$argon2id$v=19$m=256,t=1,p=8$")
    assert spy.calls == 1
    assert check_password("pw", user.password)


@override_settings(PASSWORD_HASHERS=[OWN, PBKDF2])
async def test_a_hasher_with_its_own_encode_is_called() -> None:
    """A subclass overriding encode keeps working: its own method makes the hash."""
    before = OwnEncodeArgon2PasswordHasher.calls
    encoded = await amake_password("pw")
    assert OwnEncodeArgon2PasswordHasher.calls == before + 1
    assert check_password("pw", encoded)


@override_settings(PASSWORD_HASHERS=[CHEAP, PBKDF2])
async def test_mocks_of_djangos_functions_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that mocks Django's make_password or verify_password still gets its mock."""
    monkeypatch.setattr(hashers, "make_password", lambda *args, **kwargs: "mocked")
    assert await amake_password("pw") == "mocked"
    if hasattr(hashers, "verify_password"):
        monkeypatch.setattr(hashers, "verify_password", lambda *args, **kwargs: (True, True))
        assert await averify_password("x", "y") == (True, True)
