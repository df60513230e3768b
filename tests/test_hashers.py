"""The algorithms: formats, parameters, bounds and bad input, one hasher at a time."""

from __future__ import annotations

import re
import sys
import time

import pytest

import loopsafe
from _support import run_together
from loopsafe import profiles
from loopsafe._hashers import identify_hasher, verify_password
from loopsafe.exceptions import UnknownAlgorithm

CHEAP = {h.algorithm: h for h in profiles.CHEAP.hashers()}
CHEAP["bcrypt"] = loopsafe.BCryptHasher(4)
CHEAP["md5"] = loopsafe.MD5Hasher()
ALL = [pytest.param(h, id=name) for name, h in sorted(CHEAP.items())]

FORMATS = {
    "pbkdf2_sha256": r"pbkdf2_sha256\$1000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{43}=",
    "pbkdf2_sha1": r"pbkdf2_sha1\$1000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{27}=",
    "argon2": r"argon2\$argon2id\$v=19\$m=8,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]{43}",
    "bcrypt_sha256": r"bcrypt_sha256\$\$2b\$04\$[./A-Za-z0-9]{53}",
    "bcrypt": r"bcrypt\$\$2b\$04\$[./A-Za-z0-9]{53}",
    "scrypt": r"scrypt\$16\$[A-Za-z0-9]{22}\$1\$1\$[A-Za-z0-9+/]{86}==",
    "md5": r"md5\$[A-Za-z0-9]{22}\$[0-9a-f]{32}",
}


@pytest.mark.parametrize("hasher", ALL)
class TestEveryHasher:
    """Behaviour every algorithm shares."""

    def test_round_trip_in_djangos_format(self, hasher):
        """hash() makes Django's exact format and verifies; a wrong password does not."""
        encoded = hasher.hash("s3cret")
        assert re.fullmatch(FORMATS[hasher.algorithm], encoded), encoded
        assert hasher.verify("s3cret", encoded)
        assert hasher.verify(b"s3cret", encoded)
        assert not hasher.verify("s3creT", encoded)
        assert not hasher.must_update(encoded)

    def test_fresh_salts_differ(self, hasher):
        """Two hashes of one password differ (random salt)."""
        assert hasher.hash("pw") != hasher.hash("pw")

    @pytest.mark.parametrize("password", [None, 1, 1.0, ["pw"], bytearray(b"pw")], ids=repr)
    def test_wrong_password_type(self, hasher, password):
        """Non-str/bytes passwords raise TypeError naming the type, never the value."""
        with pytest.raises(TypeError, match="str or bytes"):
            hasher.hash(password)
        with pytest.raises(TypeError, match="str or bytes"):
            hasher.verify(password, hasher.hash("pw"))

    def test_unencodable_password(self, hasher):
        """A lone surrogate cannot be hashed (ValueError) and matches nothing."""
        with pytest.raises(ValueError, match="UTF-8"):
            hasher.hash("\ud800")
        assert hasher.verify("\ud800", hasher.hash("pw")) is False

    @pytest.mark.parametrize(
        "mangle",
        [
            pytest.param(lambda e: "", id="empty"),
            pytest.param(lambda e: e.split("$")[0], id="algorithm-only"),
            pytest.param(lambda e: e.split("$")[0] + "$", id="algorithm-dollar"),
            pytest.param(lambda e: e[: len(e) // 2], id="truncated"),
            pytest.param(lambda e: e + "$extra", id="extra-field"),
            pytest.param(lambda e: e.replace("$", "$$", 2), id="doubled-dollars"),
            pytest.param(lambda e: e[:-4] + "\x00\x00\x00\x00", id="nul-bytes"),
            pytest.param(lambda e: e[:-4] + "ünï", id="non-ascii"),
            pytest.param(lambda e: e + "A" * 5000, id="huge"),
        ],
    )
    def test_malformed_encoded_is_false(self, hasher, mangle):
        """Malformed or truncated strings verify as False quickly and never raise."""
        encoded = mangle(hasher.hash("pw"))
        start = time.perf_counter()
        assert hasher.verify("pw", encoded) is False
        assert hasher.must_update(encoded) in (True, False)
        hasher.harden_runtime("pw", encoded)
        assert time.perf_counter() - start < 1.0

    def test_other_algorithms_hash_is_false(self, hasher):
        """A hash of another algorithm is simply not this hasher's: False."""
        for other in CHEAP.values():
            if other.algorithm != hasher.algorithm:
                assert hasher.verify("pw", other.hash("pw")) is False

    def test_million_byte_password(self, hasher):
        """A 1 MB password hashes and verifies in bounded time (bcrypt: refused, see below)."""
        big = "p" * 1_000_000
        start = time.perf_counter()
        if hasher.algorithm == "bcrypt":
            with pytest.raises(ValueError, match="72"):
                hasher.hash(big)
        else:
            assert hasher.verify(big, hasher.hash(big))
        assert time.perf_counter() - start < 5.0

    def test_repr_shows_parameters_only(self, hasher):
        """repr names the class and its cost, nothing else."""
        assert repr(hasher).startswith(type(hasher).__name__ + "(")


@pytest.mark.parametrize(
    ("hasher", "encoded"),
    [
        pytest.param(
            CHEAP["pbkdf2_sha256"],
            "pbkdf2_sha256$1000000000000$salt$aGFzaA==",
            id="pbkdf2-10e12-iterations",
        ),
        pytest.param(CHEAP["pbkdf2_sha256"], "pbkdf2_sha256$0$salt$aGFzaA==", id="pbkdf2-zero"),
        pytest.param(
            CHEAP["pbkdf2_sha256"], "pbkdf2_sha256$-5$salt$aGFzaA==", id="pbkdf2-negative"
        ),
        pytest.param(
            CHEAP["pbkdf2_sha256"],
            "pbkdf2_sha256$١٠٠٠$salt$aGFzaA==",  # noqa: RUF001
            id="pbkdf2-arabic-digits",
        ),
        pytest.param(
            CHEAP["argon2"],
            "argon2$argon2id$v=19$m=4294967295,t=2,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
            id="argon2-terabytes",
        ),
        pytest.param(
            CHEAP["argon2"],
            "argon2$argon2id$v=19$m=102400,t=100000,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2g",
            id="argon2-100k-passes",
        ),
        pytest.param(
            CHEAP["argon2"],
            "argon2$argon2id$v=19$m=102400,t=2,p=255$c2FsdHNhbHRzYWx0$aGFzaGhhc2g",
            id="argon2-255-lanes",
        ),
        pytest.param(CHEAP["bcrypt_sha256"], "bcrypt_sha256$$2b$31$" + "a" * 53, id="bcrypt-31"),
        pytest.param(CHEAP["bcrypt_sha256"], "bcrypt_sha256$$2b$03$" + "a" * 53, id="bcrypt-3"),
        pytest.param(CHEAP["scrypt"], "scrypt$1099511627776$salt$8$5$aGFzaA==", id="scrypt-2e40"),
        pytest.param(CHEAP["scrypt"], "scrypt$16384$salt$100000$5$aGFzaA==", id="scrypt-huge-r"),
        pytest.param(CHEAP["scrypt"], "scrypt$16384$salt$8$100000$aGFzaA==", id="scrypt-huge-p"),
        pytest.param(CHEAP["scrypt"], "scrypt$12345$salt$8$5$aGFzaA==", id="scrypt-not-pow2"),
    ],
)
def test_absurd_parameters_are_false_without_the_work(hasher, encoded):
    """Hostile cost parameters verify as False in milliseconds, harden_runtime does nothing."""
    start = time.perf_counter()
    assert hasher.verify("pw", encoded) is False
    hasher.harden_runtime("pw", encoded)
    assert time.perf_counter() - start < 0.5


class TestBcrypt:
    """bcrypt's 72-byte limit: plain bcrypt refuses, bcrypt_sha256 does not care."""

    def test_salt_the_library_refuses_is_false(self):
        """A '$2$' prefix passes the format check but bcrypt refuses it: False, no exception."""
        encoded = CHEAP["bcrypt_sha256"].hash("pw").replace("$2b$", "$2$", 1)
        assert CHEAP["bcrypt_sha256"].verify("pw", encoded) is False
        CHEAP["bcrypt_sha256"].harden_runtime("pw", encoded)

    def test_plain_bcrypt_refuses_long_passwords(self):
        """Hashing over 72 bytes raises a ValueError that names the fix."""
        with pytest.raises(ValueError, match="bcrypt_sha256"):
            CHEAP["bcrypt"].hash(b"x" * 73)

    def test_plain_bcrypt_long_password_verifies_false(self):
        """A 73-byte password never matches a 72-byte prefix's hash (no silent truncation)."""
        encoded = CHEAP["bcrypt"].hash(b"x" * 72)
        assert CHEAP["bcrypt"].verify(b"x" * 72, encoded)
        assert CHEAP["bcrypt"].verify(b"x" * 73, encoded) is False

    def test_bcrypt_sha256_long_passwords_differ(self):
        """bcrypt_sha256 tells apart passwords that differ after byte 72."""
        encoded = CHEAP["bcrypt_sha256"].hash(b"x" * 100)
        assert CHEAP["bcrypt_sha256"].verify(b"x" * 100, encoded)
        assert not CHEAP["bcrypt_sha256"].verify(b"x" * 101, encoded)


class TestConstructors:
    """Parameters are validated with exceptions."""

    @pytest.mark.parametrize(
        "factory",
        [
            pytest.param(lambda: loopsafe.PBKDF2Hasher(0), id="pbkdf2-zero"),
            pytest.param(lambda: loopsafe.PBKDF2Hasher(10**12), id="pbkdf2-huge"),
            pytest.param(
                lambda: loopsafe.Argon2Hasher(memory_cost=4, parallelism=1), id="argon2-m"
            ),
            pytest.param(lambda: loopsafe.BCryptSHA256Hasher(3), id="bcrypt-3"),
            pytest.param(lambda: loopsafe.BCryptSHA256Hasher(31), id="bcrypt-31"),
            pytest.param(lambda: loopsafe.ScryptHasher(1000), id="scrypt-not-pow2"),
        ],
    )
    def test_out_of_range(self, factory):
        """Out-of-range costs raise ValueError."""
        with pytest.raises(ValueError):
            factory()

    def test_wrong_types(self):
        """Non-int costs raise TypeError (bool too)."""
        with pytest.raises(TypeError):
            loopsafe.PBKDF2Hasher("1000")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            loopsafe.BCryptSHA256Hasher(True)

    def test_bad_salt(self):
        """A salt with '$' or an empty salt is refused."""
        with pytest.raises(ValueError):
            CHEAP["pbkdf2_sha256"].encode("pw", "a$b")
        with pytest.raises(ValueError):
            CHEAP["scrypt"].encode("pw", "")


class TestVerifyPassword:
    """Django's verify_password semantics over a hasher list."""

    HASHERS = profiles.CHEAP.hashers()

    def test_identify(self):
        """identify_hasher picks by prefix and refuses unknown ones without echoing secrets."""
        encoded = self.HASHERS[2].hash("pw")
        assert identify_hasher(self.HASHERS, encoded) is self.HASHERS[2]
        with pytest.raises(UnknownAlgorithm, match="'nosuch'"):
            identify_hasher(self.HASHERS, "nosuch$abc")
        with pytest.raises(UnknownAlgorithm) as info:
            identify_hasher(self.HASHERS, "plaintext-hunter2")
        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize(
        ("password", "encoded"),
        [
            pytest.param(None, "md5$salt$0123456789abcdef0123456789abcdef", id="none-password"),
            pytest.param("pw", None, id="none-hash"),
            pytest.param("pw", "!unusable", id="unusable"),
            pytest.param("pw", "unknown$1$2", id="unknown"),
            pytest.param("pw", "", id="empty"),
        ],
    )
    def test_fake_runtime_cases(self, password, encoded):
        """None/unusable/unknown return (False, False) after hashing once with the preferred."""
        calls = []
        preferred = self.HASHERS[0]

        class Counting(type(preferred)):
            def hash(self, password):
                calls.append(1)
                return super().hash(password)

        hashers = [Counting(1000), *self.HASHERS[1:]]
        assert verify_password(hashers, password, encoded) == (False, False)
        assert calls == [1]

    def test_must_update_and_harden(self):
        """Outdated same-algorithm hash: must_update True; a wrong password spends the gap."""
        weak = loopsafe.PBKDF2Hasher(1000)
        strong = loopsafe.PBKDF2Hasher(200_000)
        encoded = weak.hash("pw")
        assert verify_password([strong], "pw", encoded) == (True, True)
        start = time.perf_counter()
        assert verify_password([weak], "nope", encoded) == (False, False)
        cheap = time.perf_counter() - start
        start = time.perf_counter()
        assert verify_password([strong], "nope", encoded) == (False, True)
        hardened = time.perf_counter() - start
        assert hardened > cheap

    def test_types(self):
        """Wrong types raise TypeError."""
        with pytest.raises(TypeError):
            verify_password(self.HASHERS, 5, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            verify_password(self.HASHERS, "pw", b"x")  # type: ignore[arg-type]


def test_missing_library_names_the_extra(monkeypatch):
    """Without argon2-cffi, using Argon2 raises HasherNotAvailable naming the extra."""
    monkeypatch.setitem(sys.modules, "argon2", None)
    hasher = loopsafe.Argon2Hasher(1, 8, 1)
    with pytest.raises(loopsafe.HasherNotAvailable, match=r"pip install 'loopsafe\[argon2\]'"):
        hasher.hash("pw")
    with pytest.raises(ImportError):
        hasher.check_available()
    with pytest.raises(loopsafe.HasherNotAvailable):
        loopsafe.PasswordHash.recommended(profile=profiles.CHEAP)


def test_shared_hasher_is_thread_safe():
    """Eight threads released by a Barrier hash and verify with shared instances."""

    def work(i: int) -> None:
        for hasher in CHEAP.values():
            password = f"pw-{i}"
            encoded = hasher.hash(password)
            assert hasher.verify(password, encoded)
            assert not hasher.verify(password + "x", encoded)

    run_together(work)


def test_profiles_match_djangos_defaults():
    """Each profile carries its Django version's defaults (PBKDF2 differs by version)."""
    assert profiles.DJANGO_4_2.pbkdf2_iterations == 600_000
    assert profiles.DJANGO_5_2.pbkdf2_iterations == 1_000_000
    assert profiles.DJANGO_6_1.pbkdf2_iterations == 1_500_000
    assert profiles.DEFAULT is profiles.DJANGO_6_1
    argon2 = profiles.DJANGO_6_1.hasher("argon2")
    assert argon2.params == {"time_cost": 2, "memory_cost": 102_400, "parallelism": 8}
    assert [h.algorithm for h in profiles.DJANGO_5_2.hashers()] == [
        "pbkdf2_sha256",
        "pbkdf2_sha1",
        "argon2",
        "bcrypt_sha256",
        "scrypt",
    ]
    with pytest.raises(KeyError):
        profiles.CHEAP.hasher("md5")


def test_django_5_2_defaults_match_installed_django():
    """When Django 5.2 is installed, its hasher defaults equal the 5.2 profile."""
    django = pytest.importorskip("django")
    if django.VERSION[:2] != (5, 2):
        pytest.skip("needs Django 5.2")
    from django.contrib.auth import hashers as dh

    assert dh.PBKDF2PasswordHasher.iterations == profiles.DJANGO_5_2.pbkdf2_iterations
    assert dh.Argon2PasswordHasher.memory_cost == profiles.DJANGO_5_2.argon2_memory_cost
    assert dh.BCryptSHA256PasswordHasher.rounds == profiles.DJANGO_5_2.bcrypt_rounds
    assert dh.ScryptPasswordHasher.work_factor == profiles.DJANGO_5_2.scrypt_work_factor
