"""Parameter profiles: Django's defaults per version, Django's hasher order, a cheap one."""

from __future__ import annotations

import dataclasses

import pytest

from loopsafe import profiles
from loopsafe.profiles import CHEAP, DEFAULT, DJANGO_4_2, DJANGO_5_2, DJANGO_6_1, Profile

DJANGO_ORDER = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "scrypt"]
#: The same cost in every profile below: only PBKDF2, and scrypt's p before 5.1, move.
ARGON2 = {"time_cost": 2, "memory_cost": 102_400, "parallelism": 8}


@pytest.mark.parametrize(
    ("profile", "pbkdf2", "scrypt_p"),
    [
        pytest.param(DJANGO_4_2, 600_000, 1, id="django-4.2"),
        pytest.param(DJANGO_5_2, 1_000_000, 5, id="django-5.2"),
        pytest.param(DJANGO_6_1, 1_500_000, 5, id="django-6.1"),
    ],
)
def test_django_profiles_hold_that_versions_defaults(profile, pbkdf2, scrypt_p):
    """Each Django profile's hashers carry the defaults of that version's source."""
    params = {h.algorithm: h.params for h in profile.hashers()}
    assert params == {
        "pbkdf2_sha256": {"iterations": pbkdf2},
        "pbkdf2_sha1": {"iterations": pbkdf2},
        "argon2": ARGON2,
        "bcrypt_sha256": {"rounds": 12},
        "scrypt": {"work_factor": 2**14, "block_size": 8, "parallelism": scrypt_p},
    }


@pytest.mark.parametrize("profile", [DJANGO_4_2, DJANGO_5_2, DJANGO_6_1, CHEAP], ids=repr)
def test_hashers_follow_djangos_default_order(profile):
    """hashers() lists Django's default PASSWORD_HASHERS order: PBKDF2-SHA256 preferred."""
    assert [h.algorithm for h in profile.hashers()] == DJANGO_ORDER


def test_default_is_the_newest_django():
    """DEFAULT is Django 6.1's profile, and a bare Profile has the same parameters."""
    assert DEFAULT is DJANGO_6_1
    assert dataclasses.replace(Profile("x"), name=DEFAULT.name) == DEFAULT


def test_cheap_profile_is_cheap():
    """CHEAP is argon2-cffi's CHEAPEST for Argon2 and each library's minimum elsewhere."""
    params = {h.algorithm: h.params for h in CHEAP.hashers()}
    assert params == {
        "pbkdf2_sha256": {"iterations": 1_000},
        "pbkdf2_sha1": {"iterations": 1_000},
        "argon2": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},
        "bcrypt_sha256": {"rounds": 4},
        "scrypt": {"work_factor": 16, "block_size": 1, "parallelism": 1},
    }


def test_hasher_by_algorithm():
    """hasher(name) returns that algorithm's hasher; an algorithm not in the list is a KeyError."""
    assert DJANGO_5_2.hasher("argon2").params == ARGON2
    assert DJANGO_5_2.hasher("pbkdf2_sha1").params == {"iterations": 1_000_000}
    with pytest.raises(KeyError):
        CHEAP.hasher("md5")


def test_hashers_are_new_each_time():
    """Each call builds a new list, so a caller may reorder or extend it."""
    first, second = CHEAP.hashers(), CHEAP.hashers()
    assert first is not second
    first.pop()
    assert len(CHEAP.hashers()) == len(DJANGO_ORDER)


def test_profiles_are_frozen():
    """A profile cannot change after creation."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        CHEAP.pbkdf2_iterations = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"pbkdf2_iterations": 0}, ValueError, id="pbkdf2-zero"),
        pytest.param({"argon2_memory_cost": 2**30}, ValueError, id="argon2-1-tib"),
        pytest.param({"bcrypt_rounds": 31}, ValueError, id="bcrypt-31"),
        pytest.param({"scrypt_work_factor": 1000}, ValueError, id="scrypt-not-pow2"),
        pytest.param({"bcrypt_rounds": "12"}, TypeError, id="bcrypt-str"),
    ],
)
def test_bad_profiles_fail_at_creation(changes, error):
    """A profile checks its parameters when it is made, not at the first login."""
    with pytest.raises(error):
        Profile("bad", **changes)


def test_all_names_the_public_profiles():
    """__all__ lists the class and every profile constant."""
    assert profiles.__all__ == [
        "CHEAP",
        "DEFAULT",
        "DJANGO_4_2",
        "DJANGO_5_2",
        "DJANGO_6_1",
        "Profile",
    ]


def test_matches_the_installed_django():
    """When Django 4.2, 5.2 or 6.1 is installed, its hasher classes' defaults equal the profile."""
    django = pytest.importorskip("django")
    profile = {(4, 2): DJANGO_4_2, (5, 2): DJANGO_5_2, (6, 1): DJANGO_6_1}.get(django.VERSION[:2])
    if profile is None:
        pytest.skip(f"no profile for Django {django.get_version()}")
    from django.contrib.auth import hashers as dh

    assert dh.PBKDF2PasswordHasher.iterations == profile.pbkdf2_iterations
    assert dh.PBKDF2SHA1PasswordHasher.iterations == profile.pbkdf2_iterations
    assert dh.Argon2PasswordHasher.time_cost == profile.argon2_time_cost
    assert dh.Argon2PasswordHasher.memory_cost == profile.argon2_memory_cost
    assert dh.Argon2PasswordHasher.parallelism == profile.argon2_parallelism
    assert dh.BCryptSHA256PasswordHasher.rounds == profile.bcrypt_rounds
    assert dh.ScryptPasswordHasher.work_factor == profile.scrypt_work_factor
    assert dh.ScryptPasswordHasher.block_size == profile.scrypt_block_size
    assert dh.ScryptPasswordHasher.parallelism == profile.scrypt_parallelism
    from django.conf import global_settings

    names = [path.rsplit(".", 1)[1] for path in global_settings.PASSWORD_HASHERS]
    assert [getattr(dh, name).algorithm for name in names] == DJANGO_ORDER
