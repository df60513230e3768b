"""The algorithms: formats, parameters, bounds and bad input, one hasher at a time.

Every hasher runs at the cheap profile. Time bounds are generous on purpose
(`BOUND`): they tell "no work was done" from "an absurd hash was trusted",
which would take minutes to days, not a fast machine from a slow one.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time

import pytest

from _support import iter_exception_chain, run_together
from loopsafe import (
    Argon2Hasher,
    BCryptHasher,
    BCryptSHA256Hasher,
    HasherNotAvailable,
    MD5Hasher,
    PBKDF2Hasher,
    PBKDF2SHA1Hasher,
    ScryptHasher,
    UnknownAlgorithm,
    profiles,
)
from loopsafe.hashers import identify_hasher, verify_password

#: Seconds within which a call that must do no work returns, even on a noisy
#: 2-core machine. Unbounded work would take minutes to days.
BOUND = 1.0

CHEAP = {h.algorithm: h for h in profiles.CHEAP.hashers()}
CHEAP["bcrypt"] = BCryptHasher(rounds=4)
CHEAP["md5"] = MD5Hasher()
ALL = [pytest.param(h, id=name) for name, h in sorted(CHEAP.items())]

FORMATS = {
    "pbkdf2_sha256": r"pbkdf2_sha256\$1000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{43}=",
    "pbkdf2_sha1": r"pbkdf2_sha1\$1000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{27}=",
    "argon2": r"argon2\$argon2id\$v=19\$m=8,t=1,p=1\$[A-Za-z0-9+/]{30}\$[A-Za-z0-9+/]{43}",
    "bcrypt_sha256": r"bcrypt_sha256\$\$2b\$04\$[./A-Za-z0-9]{53}",
    "bcrypt": r"bcrypt\$\$2b\$04\$[./A-Za-z0-9]{53}",
    "scrypt": r"scrypt\$16\$[A-Za-z0-9]{22}\$1\$1\$[A-Za-z0-9+/]{86}==",
    "md5": r"md5\$[A-Za-z0-9]{22}\$[0-9a-f]{32}",
}


#: Ways to break a valid encoded hash.
MANGLES = {
    "empty": lambda e: "",
    "algorithm-only": lambda e: e.split("$")[0],
    "algorithm-dollar": lambda e: e.split("$")[0] + "$",
    "truncated-half": lambda e: e[: len(e) // 2],
    "truncated-one": lambda e: e[:-1],
    "extra-field": lambda e: e + "$extra",
    "doubled-dollars": lambda e: e.replace("$", "$$", 2),
    "field-missing": lambda e: "$".join(e.split("$")[:-1]),
    "upper-case": lambda e: e.upper(),
    "leading-space": lambda e: " " + e,
    "trailing-newline": lambda e: e + "\n",
    "nul-bytes": lambda e: e[:-4] + "\x00\x00\x00\x00",
    "non-ascii": lambda e: e[:-4] + "ünï",
    "lone-surrogate": lambda e: e[:-4] + "\ud800",
    "huge": lambda e: e + "A" * 5000,
    "only-dollars": lambda e: "$" * 200,
}
#: An Argon2 tag one character shorter is a well-formed hash of another
#: length (argon2-cffi reads hash_len from it): readable, wrong, and outdated.
STILL_READABLE = {("argon2", "truncated-one")}


@pytest.mark.parametrize("hasher", ALL)
class TestEveryHasher:
    """Behaviour every algorithm shares."""

    def test_round_trip_in_djangos_format(self, hasher):
        """hash() makes Django's exact format and verifies; a wrong password does not."""
        encoded = hasher.hash("s3cret")
        assert re.fullmatch(FORMATS[hasher.algorithm], encoded), encoded
        assert hasher.verify("s3cret", encoded) is True
        assert hasher.verify(b"s3cret", encoded) is True
        assert hasher.verify("s3creT", encoded) is False
        assert hasher.must_update(encoded) is False
        assert hasher.can_read(encoded)

    def test_non_ascii_str_is_its_utf8_bytes(self, hasher):
        """A str password is hashed as its UTF-8 bytes, like Django."""
        encoded = hasher.hash("pässwörd-🔑")
        assert hasher.verify("pässwörd-🔑".encode(), encoded)
        assert not hasher.verify("pässwörd-🔑".encode("latin-1", "replace"), encoded)

    def test_fresh_salts_differ(self, hasher):
        """Two hashes of one password differ (random salt)."""
        assert hasher.hash("pw") != hasher.hash("pw")

    def test_decode_gives_djangos_fields(self, hasher):
        """decode() returns Django's keys; the cost matches the hasher's parameters."""
        decoded = hasher.decode(hasher.hash("pw"))
        assert decoded["algorithm"] == hasher.algorithm
        assert {"algorithm", "salt"} <= set(decoded)
        for name, value in hasher.params.items():
            assert decoded["work_factor" if name == "rounds" else name] == value

    @pytest.mark.parametrize(
        "password",
        [
            pytest.param(None, id="none"),
            pytest.param(1, id="int"),
            pytest.param(1.0, id="float"),
            pytest.param(["pw"], id="list"),
            pytest.param(bytearray(b"pw"), id="bytearray"),
            pytest.param(memoryview(b"pw"), id="memoryview"),
        ],
    )
    def test_wrong_password_type(self, hasher, password):
        """Non-str/bytes passwords raise TypeError naming the type, never the value."""
        encoded = hasher.hash("pw")
        for call in (hasher.hash, lambda p: hasher.verify(p, encoded)):
            with pytest.raises(TypeError, match="password must be str or bytes, not ") as info:
                call(password)
            assert type(password).__name__ in str(info.value)
            assert "pw" not in str(info.value)
        with pytest.raises(TypeError):
            hasher.harden_runtime(password, encoded)

    def test_unencodable_password(self, hasher):
        """A str with a lone surrogate cannot be hashed (ValueError) and verifies as False."""
        with pytest.raises(ValueError, match="not valid Unicode"):
            hasher.hash("\ud800")
        assert hasher.verify("\ud800", hasher.hash("pw")) is False

    @pytest.mark.parametrize(
        "encoded",
        [
            pytest.param(b"md5$salt$hash", id="bytes"),
            pytest.param(42, id="int"),
            pytest.param(["md5"], id="list"),
        ],
    )
    def test_wrong_encoded_type(self, hasher, encoded):
        """A non-str encoded hash is a TypeError naming the type; None is just unreadable."""
        for call in (
            lambda: hasher.verify("pw", encoded),
            lambda: hasher.must_update(encoded),
            lambda: hasher.decode(encoded),
        ):
            with pytest.raises(TypeError, match="encoded hash must be str"):
                call()
        assert hasher.verify("pw", None) is False
        assert hasher.must_update(None) is False

    @pytest.mark.parametrize("mangle", sorted(MANGLES))
    def test_malformed_encoded_is_false(self, hasher, mangle):
        """Malformed strings verify False, must_update False, harden nothing; quickly, no raise."""
        encoded = MANGLES[mangle](hasher.hash("pw"))
        start = time.perf_counter()
        assert hasher.verify("pw", encoded) is False
        assert hasher.harden_runtime("pw", encoded) is None
        if (hasher.algorithm, mangle) in STILL_READABLE:
            assert hasher.can_read(encoded)
        else:
            assert hasher.must_update(encoded) is False
            assert not hasher.can_read(encoded)
            with pytest.raises(ValueError, match=f"not a readable {hasher.algorithm} hash"):
                hasher.decode(encoded)
        assert time.perf_counter() - start < BOUND

    def test_other_algorithms_hash_is_false(self, hasher):
        """A hash of another algorithm is simply not this hasher's: False."""
        for other in CHEAP.values():
            if other.algorithm != hasher.algorithm:
                encoded = other.hash("pw")
                assert hasher.verify("pw", encoded) is False
                assert hasher.must_update(encoded) is False

    def test_million_byte_password(self, hasher):
        """A 1 MB password hashes and verifies in bounded time (plain bcrypt: refused)."""
        big = "p" * 1_000_000
        start = time.perf_counter()
        if hasher.algorithm == "bcrypt":
            with pytest.raises(ValueError, match="bcrypt_sha256"):
                hasher.hash(big)
            assert hasher.verify(big, hasher.hash("p" * 72)) is False
        else:
            encoded = hasher.hash(big)
            assert hasher.verify(big, encoded)
            assert not hasher.verify(big[:-1], encoded)
        assert time.perf_counter() - start < 5 * BOUND

    def test_bad_salt(self, hasher):
        """encode() refuses an empty salt or one with '$' (ValueError), or a non-str (TypeError)."""
        for salt in ("", "a$b"):
            with pytest.raises(ValueError, match="salt"):
                hasher.encode("pw", salt)
        with pytest.raises(TypeError, match="salt must be str"):
            hasher.encode("pw", 12345678)

    def test_repr_shows_parameters_only(self, hasher):
        """repr() is the class and its cost, e.g. PBKDF2Hasher(iterations=1000)."""
        params = ", ".join(f"{k}={v}" for k, v in hasher.params.items())
        assert repr(hasher) == f"{type(hasher).__name__}({params})"

    def test_parameters_are_read_only(self, hasher):
        """A hasher's cost cannot be changed after construction: it is shared between threads."""
        for name in hasher.params:
            with pytest.raises(AttributeError):
                setattr(hasher, name, 1)


# -- absurd but representable parameters ----------------------------------------------

ABSURD = [
    ("pbkdf2_sha256", "pbkdf2_sha256$1000000000000$salt$aGFzaA==", "10e12-iterations"),
    ("pbkdf2_sha256", "pbkdf2_sha256$2147483647$salt$aGFzaA==", "2e31-iterations"),
    ("pbkdf2_sha256", "pbkdf2_sha256$20000001$salt$aGFzaA==", "max-iterations-plus-one"),
    ("pbkdf2_sha256", "pbkdf2_sha256$0$salt$aGFzaA==", "zero-iterations"),
    ("pbkdf2_sha256", "pbkdf2_sha256$-5$salt$aGFzaA==", "negative-iterations"),
    ("pbkdf2_sha256", "pbkdf2_sha256$+1000$salt$aGFzaA==", "plus-sign"),
    ("pbkdf2_sha256", "pbkdf2_sha256$01000$salt$aGFzaA==", "leading-zero"),
    ("pbkdf2_sha256", "pbkdf2_sha256$1_000$salt$aGFzaA==", "underscore-digits"),
    ("pbkdf2_sha256", "pbkdf2_sha256$١٠٠٠$salt$aGFzaA==", "arabic-digits"),  # noqa: RUF001
    ("pbkdf2_sha256", "pbkdf2_sha256$9" + "9" * 500 + "$salt$aGFzaA==", "500-digits"),
    ("pbkdf2_sha1", "pbkdf2_sha1$1000000000000$salt$aGFzaA==", "10e12-iterations"),
    ("pbkdf2_sha256", "pbkdf2_sha256$1000$$aGFzaA==", "empty-salt"),
    ("argon2", "argon2$argon2id$v=19$m=4294967295,t=2,p=8$c2FsdHNhbHQ$aGFzaA", "4-tib"),
    ("argon2", "argon2$argon2id$v=19$m=2097153,t=1,p=8$c2FsdHNhbHQ$aGFzaA", "2-gib-plus-1"),
    ("argon2", "argon2$argon2id$v=19$m=2097152,t=3,p=8$c2FsdHNhbHQ$aGFzaA", "over-max-work"),
    ("argon2", "argon2$argon2id$v=19$m=102400,t=100000,p=8$c2FsdHNhbHQ$aGFzaA", "100k-passes"),
    ("argon2", "argon2$argon2id$v=19$m=102400,t=2,p=255$c2FsdHNhbHQ$aGFzaA", "255-lanes"),
    ("argon2", "argon2$argon2id$v=19$m=8,t=1,p=8$c2FsdHNhbHQ$aGFzaA", "memory-under-8-per-lane"),
    ("argon2", "argon2$argon2id$v=19$m=8,t=0,p=1$c2FsdHNhbHQ$aGFzaA", "zero-passes"),
    ("argon2", "argon2$argon2x$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "unknown-variety"),
    ("argon2", "argon2$argon2id$v=19$m=8,t=1,p=1$c2Fs*HNhbHQ$aGFzaA", "salt-not-base64"),
    ("bcrypt_sha256", "bcrypt_sha256$$2b$31$" + "a" * 53, "cost-31"),
    ("bcrypt_sha256", "bcrypt_sha256$$2b$17$" + "a" * 53, "cost-17"),
    ("bcrypt_sha256", "bcrypt_sha256$$2b$03$" + "a" * 53, "cost-3"),
    ("bcrypt_sha256", "bcrypt_sha256$$2$04$" + "a" * 53, "no-minor-version"),
    ("bcrypt_sha256", "bcrypt_sha256$$2b$04$" + "a" * 52, "52-characters"),
    ("bcrypt", "bcrypt$$2b$31$" + "a" * 53, "cost-31"),
    ("scrypt", "scrypt$1099511627776$salt$8$5$aGFzaA==", "n-2e40"),
    ("scrypt", "scrypt$16777216$salt$8$5$aGFzaA==", "n-2e24-memory"),
    ("scrypt", "scrypt$16384$salt$100000$5$aGFzaA==", "huge-r"),
    ("scrypt", "scrypt$16384$salt$8$100000$aGFzaA==", "huge-p"),
    ("scrypt", "scrypt$1048576$salt$1$1000$aGFzaA==", "over-max-work"),
    ("scrypt", "scrypt$12345$salt$8$5$aGFzaA==", "n-not-power-of-two"),
    ("scrypt", "scrypt$1$salt$8$5$aGFzaA==", "n-1"),
    ("scrypt", "scrypt$16384$salt$0$5$aGFzaA==", "zero-r"),
    ("md5", "md5$$0123456789abcdef0123456789abcdef", "empty-salt"),
]


@pytest.mark.parametrize(
    ("algorithm", "encoded"), [pytest.param(a, e, id=f"{a}-{i}") for a, e, i in ABSURD]
)
def test_absurd_parameters_are_false_without_the_work(algorithm, encoded):
    """Hostile or out-of-bounds parameters are unreadable: False at once, no hardening work."""
    hasher = CHEAP[algorithm]
    strong = type(hasher)(**{k: v + 2 if k == "rounds" else v for k, v in hasher.params.items()})
    start = time.perf_counter()
    assert hasher.verify("pw", encoded) is False
    assert hasher.must_update(encoded) is False
    strong.harden_runtime("pw", encoded)
    with pytest.raises(ValueError, match=f"not a readable {algorithm} hash"):
        hasher.decode(encoded)
    assert verify_password([hasher], "pw", encoded) == (False, False)
    assert time.perf_counter() - start < BOUND


@pytest.mark.parametrize(
    ("hasher", "encoded"),
    [
        pytest.param(
            CHEAP["pbkdf2_sha256"], "pbkdf2_sha256$20000000$salt$" + "A" * 43 + "=", id="pbkdf2"
        ),
        pytest.param(
            CHEAP["argon2"],
            "argon2$argon2id$v=19$m=2097152,t=2,p=64$c2FsdHNhbHQ$aGFzaA",
            id="argon2-2gib",
        ),
        pytest.param(
            CHEAP["argon2"],
            "argon2$argon2i$v=19$m=65536,t=64,p=4$c2FsdHNhbHQ$aGFzaA",
            id="argon2i-64-passes",
        ),
        pytest.param(CHEAP["bcrypt_sha256"], "bcrypt_sha256$$2b$16$" + "a" * 53, id="bcrypt-16"),
        pytest.param(
            CHEAP["scrypt"], "scrypt$262144$salt$8$5$" + "A" * 86 + "==", id="scrypt-256mib"
        ),
    ],
)
def test_costs_up_to_the_bounds_are_readable(hasher, encoded):
    """A site that raised its cost, up to each class's bound, still has readable hashes."""
    assert hasher.can_read(encoded)
    assert hasher.must_update(encoded) is True  # and they update to the hasher's cost


def test_bounds_are_class_attributes():
    """A subclass can tighten (or widen) a bound; hashes past it become unreadable."""

    class Tight(PBKDF2Hasher):
        max_iterations = 2000

    ok, over = PBKDF2Hasher(iterations=2000).hash("pw"), PBKDF2Hasher(iterations=2001).hash("pw")
    tight = Tight(iterations=1000)
    assert tight.verify("pw", ok)
    assert tight.verify("pw", over) is False
    with pytest.raises(ValueError, match=r"\[1, 2000\]"):
        Tight(iterations=2001)


# -- construction -----------------------------------------------------------------------


class TestConstructors:
    """Parameters are keywords, Django 6.1's by default, and validated with exceptions."""

    def test_defaults_are_django_6_1s(self):
        """With no arguments, every hasher has Django 6.1's default parameters."""
        assert PBKDF2Hasher().params == {"iterations": 1_500_000}
        assert PBKDF2SHA1Hasher().params == {"iterations": 1_500_000}
        assert Argon2Hasher().params == {"time_cost": 2, "memory_cost": 102_400, "parallelism": 8}
        assert BCryptSHA256Hasher().params == {"rounds": 12}
        assert BCryptHasher().params == {"rounds": 12}
        assert ScryptHasher().params == {"work_factor": 2**14, "block_size": 8, "parallelism": 5}
        assert MD5Hasher().params == {}

    @pytest.mark.parametrize(
        "factory",
        [
            pytest.param(lambda: PBKDF2Hasher(iterations=0), id="pbkdf2-zero"),
            pytest.param(lambda: PBKDF2Hasher(iterations=10**12), id="pbkdf2-huge"),
            pytest.param(lambda: Argon2Hasher(memory_cost=4, parallelism=1), id="argon2-m-4"),
            pytest.param(
                lambda: Argon2Hasher(memory_cost=8, parallelism=2), id="argon2-m-per-lane"
            ),
            pytest.param(lambda: Argon2Hasher(memory_cost=2**22), id="argon2-4gib"),
            pytest.param(lambda: Argon2Hasher(time_cost=64, memory_cost=2**21), id="argon2-work"),
            pytest.param(lambda: Argon2Hasher(parallelism=0), id="argon2-p-zero"),
            pytest.param(lambda: BCryptSHA256Hasher(rounds=3), id="bcrypt-3"),
            pytest.param(lambda: BCryptHasher(rounds=31), id="bcrypt-31"),
            pytest.param(lambda: ScryptHasher(work_factor=1000), id="scrypt-not-pow2"),
            pytest.param(lambda: ScryptHasher(work_factor=2**24), id="scrypt-memory"),
            pytest.param(lambda: ScryptHasher(block_size=0), id="scrypt-r-zero"),
            pytest.param(lambda: ScryptHasher(parallelism=10**6), id="scrypt-work"),
        ],
    )
    def test_out_of_range(self, factory):
        """Out-of-range costs raise ValueError."""
        with pytest.raises(ValueError):
            factory()

    @pytest.mark.parametrize(
        "factory",
        [
            pytest.param(lambda: PBKDF2Hasher(iterations="1000"), id="str"),
            pytest.param(lambda: PBKDF2Hasher(iterations=1000.0), id="float"),
            pytest.param(lambda: BCryptSHA256Hasher(rounds=True), id="bool"),
            pytest.param(lambda: Argon2Hasher(time_cost=None), id="none"),
            pytest.param(lambda: ScryptHasher(work_factor=2.0**14), id="scrypt-float"),
        ],
    )
    def test_wrong_types(self, factory):
        """Non-int costs raise TypeError (bool too)."""
        with pytest.raises(TypeError, match="must be an int"):
            factory()

    def test_parameters_are_keyword_only(self):
        """Costs are passed by name: PBKDF2Hasher(1000) is a TypeError."""
        with pytest.raises(TypeError):
            PBKDF2Hasher(1000)  # type: ignore[misc]

    def test_explicit_iterations_are_bounded(self):
        """encode(..., iterations=) is checked against the same bounds."""
        hasher = CHEAP["pbkdf2_sha256"]
        assert hasher.encode("pw", "salt", iterations=5).startswith("pbkdf2_sha256$5$salt$")
        for iterations in (0, 10**12):
            with pytest.raises(ValueError, match="iterations"):
                hasher.encode("pw", "salt", iterations=iterations)


def test_argon2_salt_shorter_than_8_bytes_is_refused():
    """argon2's C library needs 8 bytes of salt: a shorter one is a clear ValueError."""
    with pytest.raises(ValueError, match="at least 8 bytes"):
        CHEAP["argon2"].encode("pw", "short")


def test_argon2_verifies_other_varieties():
    """argon2i and argon2d hashes (older Django, other tools) verify; they need an update."""
    import argon2

    for kind in (argon2.low_level.Type.I, argon2.low_level.Type.D):
        raw = argon2.low_level.hash_secret(
            b"pw", b"saltsalt", time_cost=1, memory_cost=8, parallelism=1, hash_len=32, type=kind
        )
        encoded = "argon2" + raw.decode()
        assert CHEAP["argon2"].verify("pw", encoded)
        assert not CHEAP["argon2"].verify("pW", encoded)
        assert CHEAP["argon2"].must_update(encoded)


# -- bcrypt's 72 bytes ------------------------------------------------------------------


class TestBcrypt:
    """bcrypt's 72-byte limit: plain bcrypt refuses, bcrypt_sha256 does not care."""

    def test_plain_bcrypt_refuses_long_passwords(self):
        """Hashing over 72 bytes raises a ValueError that names the fix, not the password."""
        with pytest.raises(ValueError, match="use BCryptSHA256Hasher") as info:
            CHEAP["bcrypt"].hash(b"secret-" * 11)
        assert "secret" not in str(info.value)
        assert info.value.__context__ is None

    def test_plain_bcrypt_long_password_verifies_false(self):
        """A 73-byte password never matches its 72-byte prefix's hash (no silent truncation)."""
        encoded = CHEAP["bcrypt"].hash(b"x" * 72)
        assert CHEAP["bcrypt"].verify(b"x" * 72, encoded)
        assert CHEAP["bcrypt"].verify(b"x" * 73, encoded) is False

    def test_bcrypt_sha256_long_passwords_differ(self):
        """bcrypt_sha256 tells apart passwords that differ after byte 72."""
        encoded = CHEAP["bcrypt_sha256"].hash(b"x" * 100)
        assert CHEAP["bcrypt_sha256"].verify(b"x" * 100, encoded)
        assert not CHEAP["bcrypt_sha256"].verify(b"x" * 101, encoded)

    def test_salt_is_a_bcrypt_salt_at_this_cost(self):
        """salt() is bcrypt's own ('$2b$04$' and 22 characters); encode takes str or bytes."""
        hasher = CHEAP["bcrypt_sha256"]
        salt = hasher.salt()
        assert re.fullmatch(r"\$2b\$04\$[./A-Za-z0-9]{22}", salt)
        assert hasher.encode("pw", salt) == hasher.encode("pw", salt.encode())

    @pytest.mark.parametrize(
        "salt",
        [
            pytest.param("$2b$31$" + "a" * 22, id="cost-31"),
            pytest.param("$2b$03$" + "a" * 22, id="cost-3"),
            pytest.param("saltsaltsalt", id="not-bcrypt"),
            pytest.param("$2b$04$short", id="short"),
        ],
    )
    def test_encode_refuses_other_salts(self, salt):
        """An explicit salt must be a bcrypt salt within the cost bounds: never hours of work."""
        start = time.perf_counter()
        with pytest.raises(ValueError, match="bcrypt salt"):
            CHEAP["bcrypt_sha256"].encode("pw", salt)
        assert time.perf_counter() - start < BOUND


class TestNoFastFalse:
    """A password that cannot match still costs a full check, or timing would show the hash."""

    def test_unencodable_password_runs_the_check(self, monkeypatch):
        """A lone-surrogate password is False only after PBKDF2 ran at the stored cost."""
        calls = []
        encoded = CHEAP["pbkdf2_sha256"].hash("pw")
        derive = PBKDF2Hasher._derive
        monkeypatch.setattr(
            PBKDF2Hasher, "_derive", lambda self, *a: calls.append(a[2]) or derive(self, *a)
        )
        assert CHEAP["pbkdf2_sha256"].verify("pw\ud800", encoded) is False
        assert calls == [1000]

    def test_surrogatepass_bytes_do_not_match_the_str(self):
        """The bytes the check runs on are not a way in: hashing them does not admit the str."""
        hasher = CHEAP["pbkdf2_sha256"]
        encoded = hasher.hash("\ud800".encode("utf-8", "surrogatepass"))
        assert hasher.verify("\ud800", encoded) is False

    def test_plain_bcrypt_over_72_bytes_runs_bcrypt(self, monkeypatch):
        """A 73-byte password against plain bcrypt is False after one bcrypt run."""
        import bcrypt

        calls = []
        encoded = CHEAP["bcrypt"].hash(b"x" * 72)
        hashpw = bcrypt.hashpw
        monkeypatch.setattr(bcrypt, "hashpw", lambda p, s: calls.append(len(p)) or hashpw(p, s))
        assert CHEAP["bcrypt"].verify(b"x" * 73, encoded) is False
        assert calls == [72]


# -- harden_runtime ---------------------------------------------------------------------


class TestHardenRuntime:
    """Extra work for outdated hashes, exactly where Django does it, never for absurd ones."""

    def test_pbkdf2_runs_the_missing_iterations(self, monkeypatch):
        """A 1,000-iteration hash against a 3,000-iteration hasher spends 2,000 more."""
        calls = []
        strong = PBKDF2Hasher(iterations=3000)
        weak_hash, strong_hash = CHEAP["pbkdf2_sha256"].hash("pw"), strong.hash("pw")
        derive = PBKDF2Hasher._derive
        monkeypatch.setattr(
            PBKDF2Hasher, "_derive", lambda self, *a: calls.append(a[2]) or derive(self, *a)
        )
        strong.harden_runtime("nope", weak_hash)
        assert calls == [2000]
        calls.clear()
        strong.harden_runtime("nope", strong_hash)  # up to date: nothing to spend
        assert calls == []

    def test_bcrypt_runs_the_missing_rounds(self, monkeypatch):
        """A cost-4 hash against a cost-6 hasher runs bcrypt 3 more times (2**2 - 1)."""
        import bcrypt

        calls = []
        hashpw = bcrypt.hashpw
        monkeypatch.setattr(bcrypt, "hashpw", lambda p, s: calls.append(s) or hashpw(p, s))
        encoded = CHEAP["bcrypt_sha256"].hash("pw")
        calls.clear()
        BCryptSHA256Hasher(rounds=6).harden_runtime("nope", encoded)
        assert len(calls) == 3
        calls.clear()
        BCryptHasher(rounds=6).harden_runtime(b"x" * 100, CHEAP["bcrypt"].hash("pw"))
        assert len(calls) == 4  # 3 hardening calls, after the 1 hash() call

    @pytest.mark.parametrize("algorithm", ["argon2", "scrypt", "md5"])
    def test_no_op_where_djangos_is(self, algorithm):
        """Argon2, scrypt and MD5 do nothing, like Django's."""
        hasher = CHEAP[algorithm]
        assert hasher.harden_runtime("nope", hasher.hash("pw")) is None


# -- identify_hasher and verify_password ------------------------------------------------


class TestIdentifyHasher:
    """Django's prefix rule: the text before the first '$' names the algorithm."""

    HASHERS = profiles.CHEAP.hashers()

    def test_picks_by_prefix(self):
        """Each hasher's own hash identifies that hasher."""
        for hasher in self.HASHERS:
            assert identify_hasher(self.HASHERS, hasher.hash("pw")) is hasher

    def test_first_match_wins(self):
        """With two hashers of one algorithm, the first one answers."""
        first, second = PBKDF2Hasher(iterations=1000), PBKDF2Hasher(iterations=2000)
        assert identify_hasher([first, second], second.hash("pw")) is first

    def test_unknown_django_algorithm_is_named(self):
        """An algorithm Django ships but the list lacks is named in the message."""
        with pytest.raises(UnknownAlgorithm, match="'md5'"):
            identify_hasher(self.HASHERS, MD5Hasher().hash("pw"))

    @pytest.mark.parametrize(
        "encoded",
        [
            pytest.param("hunter2-plaintext", id="no-dollar"),
            pytest.param("hunter2$plaintext", id="dollar-inside"),
            pytest.param("pbkdf2_sha256", id="algorithm-without-dollar"),
            pytest.param("", id="empty"),
        ],
    )
    def test_unknown_prefix_is_not_echoed(self, encoded):
        """Any other prefix may be a plaintext password: the message does not quote it."""
        with pytest.raises(UnknownAlgorithm) as info:
            identify_hasher(self.HASHERS, encoded)
        assert "hunter2" not in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_wrong_type(self):
        """A non-str encoded hash is a TypeError."""
        with pytest.raises(TypeError, match="must be str, not bytes"):
            identify_hasher(self.HASHERS, b"md5$x$y")


class CountingPBKDF2(PBKDF2Hasher):
    """A PBKDF2 hasher that records its hash() and harden_runtime() calls."""

    def __init__(self, *, iterations: int) -> None:
        super().__init__(iterations=iterations)
        self.calls: list[str] = []

    def hash(self, password):
        self.calls.append("hash")
        return super().hash(password)

    def harden_runtime(self, password, encoded):
        self.calls.append("harden")
        return super().harden_runtime(password, encoded)


class TestVerifyPassword:
    """Django 5.2's verify_password semantics over a hasher list, the first preferred."""

    OTHERS = profiles.CHEAP.hashers()[1:]

    @pytest.mark.parametrize(
        ("password", "encoded"),
        [
            pytest.param(None, "md5$salt$0123456789abcdef0123456789abcdef", id="none-password"),
            pytest.param("pw", None, id="none-hash"),
            pytest.param("pw", "!unusable", id="unusable"),
            pytest.param("pw", "!" + PBKDF2Hasher(iterations=1000).hash("pw"), id="unusable-hash"),
            pytest.param("pw", "unknown$1$2", id="unknown-algorithm"),
            pytest.param("pw", "md5$salt$0123456789abcdef0123456789abcdef", id="not-configured"),
            pytest.param("pw", "", id="empty"),
            pytest.param("pw", "pbkdf2_sha256$1000$salt", id="malformed-known"),
            pytest.param("pw", "pbkdf2_sha256$10000000000$salt$aGFzaA==", id="absurd-known"),
        ],
    )
    def test_fake_runtime_cases(self, password, encoded):
        """Each returns (False, False) after hashing once with the preferred hasher (#20760)."""
        preferred = CountingPBKDF2(iterations=1000)
        assert verify_password([preferred, *self.OTHERS], password, encoded) == (False, False)
        assert preferred.calls == ["hash"]

    def test_right_password_same_parameters(self):
        """The right password at the preferred parameters: (True, False), no extra work."""
        preferred = CountingPBKDF2(iterations=1000)
        encoded = PBKDF2Hasher(iterations=1000).hash("pw")
        assert verify_password([preferred, *self.OTHERS], "pw", encoded) == (True, False)
        assert verify_password([preferred, *self.OTHERS], b"pw", encoded) == (True, False)
        assert preferred.calls == []

    def test_outdated_same_algorithm(self):
        """Outdated hash: must_update; a wrong password spends the gap (harden_runtime)."""
        preferred = CountingPBKDF2(iterations=2000)
        encoded = PBKDF2Hasher(iterations=1000).hash("pw")
        assert verify_password([preferred], "pw", encoded) == (True, True)
        assert preferred.calls == []
        assert verify_password([preferred], "nope", encoded) == (False, True)
        assert preferred.calls == ["harden"]

    def test_short_salt_must_update(self):
        """A hash with a low-entropy salt must be updated, as in Django."""
        encoded = PBKDF2Hasher(iterations=1000).encode("pw", "shortsalt")
        assert verify_password([PBKDF2Hasher(iterations=1000)], "pw", encoded) == (True, True)

    def test_other_algorithm(self):
        """Another configured algorithm: must_update, and no hardening (Django's rule)."""
        preferred = CountingPBKDF2(iterations=1000)
        hashers = [preferred, *self.OTHERS]
        for other in self.OTHERS:
            encoded = other.hash("pw")
            assert verify_password(hashers, "pw", encoded) == (True, True)
            assert verify_password(hashers, "nope", encoded) == (False, True)
        assert preferred.calls == []

    def test_types(self):
        """Wrong password or hash types raise TypeError; an empty hasher list, ValueError."""
        hashers = profiles.CHEAP.hashers()
        with pytest.raises(TypeError, match="password must be str or bytes, not int"):
            verify_password(hashers, 5, "x")
        with pytest.raises(TypeError, match="must be str, not bytes"):
            verify_password(hashers, "pw", b"x")
        with pytest.raises(ValueError, match="at least one hasher"):
            verify_password([], "pw", "x")


# -- optional libraries, threads and secrets -------------------------------------------


def test_missing_libraries_name_the_extra():
    """Without argon2-cffi and bcrypt, the module imports; using those hashers names the extra."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["argon2"] = sys.modules["bcrypt"] = None  # as if not installed
        from loopsafe import profiles, Argon2Hasher, BCryptHasher, HasherNotAvailable
        from loopsafe import MCFBCryptHasher, PHCArgon2Hasher
        from loopsafe.hashers import verify_password
        WELL_FORMED = {
            "argon2": "argon2$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$" + "A" * 43,
            "bcrypt": "bcrypt$$2b$04$" + "a" * 53,
        }
        hashers = profiles.DEFAULT.hashers()  # constructing imports nothing
        argon2, bcrypt = Argon2Hasher(), BCryptHasher()
        cheap = profiles.CHEAP.hashers()
        stored = profiles.CHEAP.hasher("pbkdf2_sha256").hash("pw")
        assert verify_password(cheap, "pw", stored) == (True, False)
        for hasher, extra in ((argon2, "argon2"), (bcrypt, "bcrypt")):
            for call in (
                hasher.check_available,
                lambda: hasher.hash("pw"),
                lambda: hasher.verify("pw", WELL_FORMED[extra]),
                lambda: hasher.salt() if extra == "bcrypt" else hasher.decode("argon2$x"),
            ):
                try:
                    call()
                except HasherNotAvailable as exc:
                    assert isinstance(exc, ImportError)
                    assert f"pip install 'loopsafe[{extra}]'" in str(exc), str(exc)
                else:
                    raise AssertionError("no HasherNotAvailable")
        for reader, extra in ((PHCArgon2Hasher(), "argon2"), (MCFBCryptHasher(), "bcrypt")):
            try:
                reader.check_available()
            except HasherNotAvailable as exc:
                assert f"pip install 'loopsafe[{extra}]'" in str(exc), str(exc)
            else:
                raise AssertionError("no HasherNotAvailable from a reader")
        print(str(HasherNotAvailable.__mro__[0].__name__), "ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "HasherNotAvailable ok"


def test_argon2_message_is_the_documented_one(monkeypatch):
    """The message is exactly the install hint: "argon2 hashes need argon2-cffi: ..."."""
    monkeypatch.setitem(sys.modules, "argon2", None)
    with pytest.raises(HasherNotAvailable) as info:
        Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")
    assert str(info.value) == "argon2 hashes need argon2-cffi: pip install 'loopsafe[argon2]'"


def test_shared_hashers_are_thread_safe():
    """Eight threads released by a Barrier, switching every microsecond, share each hasher."""
    before = sys.getswitchinterval()

    def work(i: int) -> None:
        for _ in range(3):
            for hasher in CHEAP.values():
                password = f"pw-{i}-ü"
                encoded = hasher.hash(password)
                assert hasher.verify(password, encoded)
                assert not hasher.verify(password + "x", encoded)
                assert not hasher.must_update(encoded)
                hasher.harden_runtime("x", encoded)

    run_together(work, threads=8)
    assert sys.getswitchinterval() == before


MARKER = "Mk7-loopsafe-marker-pw"


def _marker_calls():
    """Calls that raise or answer with MARKER as the password or inside the encoded string."""
    hashers = [*profiles.CHEAP.hashers(), CHEAP["bcrypt"], CHEAP["md5"]]
    for hasher in hashers:
        a = hasher.algorithm
        yield f"{a} hash surrogate", lambda h=hasher: h.hash(MARKER + "\ud800")
        yield f"{a} encode bad salt", lambda h=hasher: h.encode(MARKER, "a$b")
        yield f"{a} encode bad salt type", lambda h=hasher: h.encode(MARKER, 1)
        yield f"{a} decode marker", lambda h=hasher: h.decode(MARKER)
        yield f"{a} decode fields", lambda h=hasher, a=a: h.decode(f"{a}${MARKER}${MARKER}$x")
        yield f"{a} decode params", lambda h=hasher, a=a: h.decode(f"{a}$argon2id$v=19$m={MARKER}")
        yield f"{a} verify", lambda h=hasher, a=a: h.verify(MARKER, f"{a}${MARKER}")
        yield f"{a} verify list", lambda h=hasher: h.verify([MARKER], h.hash("pw"))
        yield f"{a} harden", lambda h=hasher, a=a: h.harden_runtime(MARKER, f"{a}${MARKER}")
    yield "bcrypt over 72", lambda: CHEAP["bcrypt"].hash(MARKER * 5)
    yield "bcrypt bad salt", lambda: CHEAP["bcrypt"].encode(MARKER, MARKER)
    yield "identify plaintext", lambda: identify_hasher(hashers, MARKER)
    yield "identify plaintext dollar", lambda: identify_hasher(hashers, f"{MARKER}$x")
    yield "verify_password list", lambda: verify_password(hashers, [MARKER], "x")
    yield "verify_password plaintext", lambda: verify_password(hashers, MARKER, MARKER)


def _texts(call):
    """What a call shows: each exception in its chain (hidden contexts too), or its answer."""
    try:
        value = call()
    except Exception as exc:  # noqa: BLE001 - every error is inspected
        return [
            f"{e!s} {e!r} {e.args!r}" for e in iter_exception_chain(exc, follow_suppressed=True)
        ]
    return [repr(value) if isinstance(value, (bool, tuple)) else ""]


def test_marker_password_never_in_messages_or_reprs():
    """No exception (nor its causes or contexts) or repr from these modules shows the password."""
    seen = [(label, text) for label, call in _marker_calls() for text in _texts(call)]
    for hasher in CHEAP.values():
        seen.append(("repr", repr(hasher)))
    for profile in (profiles.CHEAP, profiles.DEFAULT):
        seen.append(("profile", repr(profile)))
    leaks = [label for label, text in seen if MARKER in text]
    assert not leaks, leaks
    assert len(seen) > len(list(_marker_calls()))


@pytest.mark.parametrize(
    ("hasher", "expected"),
    [
        pytest.param(Argon2Hasher(), 102_400 * 1024, id="argon2-django-defaults-100-mib"),
        pytest.param(
            ScryptHasher(), 128 * 8 * (2**14 + 5), id="scrypt-django-defaults-16-mib-and-blocks"
        ),
        pytest.param(BCryptSHA256Hasher(), 4 * 1024, id="bcrypt-state"),
        pytest.param(PBKDF2Hasher(), 0, id="pbkdf2-negligible"),
        pytest.param(MD5Hasher(), 0, id="md5-negligible"),
    ],
)
def test_memory_per_hash_is_declared_from_the_parameters(hasher, expected):
    """Each hasher declares what one hash in flight holds, from its own parameters."""
    assert hasher.memory_per_hash() == expected
