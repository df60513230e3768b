"""Moving from pwdlib or passlib: their bare hashes verify, and get replaced on the next login.

The FastAPI tutorial and fastapi-users store what pwdlib makes: bare Argon2
PHC strings (``$argon2id$v=19$m=65536,t=3,p=4$...``, argon2-cffi's
``PasswordHasher``) and bare bcrypt (``$2b$12$...``, ``bcrypt.hashpw`` on the
raw password); passlib stores the same. `PHCArgon2Hasher` and
`MCFBCryptHasher` read them, verify-only, and every hash they read must be
updated, so ``verify_and_update`` answers with a Django-format hash from the
preferred hasher. Hashes come from real pwdlib where it is installed, from
argon2-cffi and bcrypt directly, and from fixed vectors that pwdlib 0.3.1 made
once, so the formats stay pinned without pwdlib.

Time bounds are generous (`BOUND`): they tell "no work was done" from "a
hostile hash was trusted", which would take minutes to days.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import time

import pytest

from _support import iter_exception_chain
from loopsafe import (
    Argon2Hasher,
    BCryptHasher,
    BCryptSHA256Hasher,
    MCFBCryptHasher,
    PasswordHash,
    PBKDF2Hasher,
    PHCArgon2Hasher,
    UnknownAlgorithm,
    profiles,
)
from loopsafe.hashers import identify_hasher, verify_password

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("argon2") is None, reason="needs argon2-cffi"),
    pytest.mark.skipif(importlib.util.find_spec("bcrypt") is None, reason="needs bcrypt"),
]

#: Seconds within which a call that must do no real work returns (one cheap
#: preferred hash at most), even on a noisy 2-core machine.
BOUND = 1.0
RIGHT = "correct horse battery staple"
UNICODE = "pässwörd-\U0001f511"
#: 76 bytes: a library that cut passwords at 72 bytes hashed its first 72.
LONG = ("x" * 70 + "\u00fc\u00f1\u00ef").encode()

#: Made once by pwdlib 0.3.1 (argon2-cffi 25.1, bcrypt 5.0), argon2-cffi and
#: bcrypt at cheap costs: (stored hash, its password).
VECTORS = {
    # pwdlib Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1)
    "pwdlib-argon2id": (
        (
            "$argon2id$v=19$m=1024,t=1,p=1$l717V2L93wC5zv6+473jjw"
            "$z/xUciPlurf0mj8+L/wvEkcung6Nupmt0jKX40n1bHo"
        ),
        RIGHT,
    ),
    "pwdlib-argon2id-unicode": (
        (
            "$argon2id$v=19$m=1024,t=1,p=1$drkBcOfHnn62attwvNxCAg"
            "$6qzF+6UxBpiM2zl//yoj7TPIA21ckWiEuTi9eb+xWKg"
        ),
        UNICODE,
    ),
    # pwdlib BcryptHasher(rounds=4) and BcryptHasher(rounds=4, prefix="2a")
    "pwdlib-bcrypt-2b": ("$2b$04$9QvueYucj8/yM8H8PSkALuaXGRdysQPU5EalTjQyKahorsMqKNbj2", RIGHT),
    "pwdlib-bcrypt-2a-unicode": (
        "$2a$04$GzdZA4R/6hRsuQV83Ng3sOu7cpzGiDxtnnhxfd8SJTrpr8ZMPQ68a",
        UNICODE,
    ),
    # PHP's password_hash() label for the same algorithm
    "bcrypt-2y": ("$2y$04$9QvueYucj8/yM8H8PSkALuaXGRdysQPU5EalTjQyKahorsMqKNbj2", RIGHT),
    # argon2-cffi's PasswordHasher: argon2i and argon2d at 1 pass, 64 KiB, 2 lanes
    "argon2i": (
        "$argon2i$v=19$m=64,t=1,p=2$S5HCta1sScW9F+bGL+5nsw$SPIenPhECodRK3Q0g4hZKFz9TtQqluMftQ+UuGY3IUk",
        RIGHT,
    ),
    "argon2d": (
        "$argon2d$v=19$m=64,t=1,p=2$Cn7n3b7kBjTSzqiMPzcM2Q$yG57wTqcGrcD6cxRm8vwa/44PLInnuvQOeRgbZVKUM8",
        RIGHT,
    ),
    # Argon2 1.0 (version 16), written without "v=" as early libraries did
    "argon2i-v16-no-version": (
        "$argon2i$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$XK5g3Uzwmw3p9aCfiZn4Mu8gQDEfWc6LineBJ5I6q4k",
        RIGHT,
    ),
}
#: bcrypt.hashpw(LONG[:72], ...): what passlib, or pwdlib on bcrypt < 5, stored for LONG.
TRUNCATED_LONG = "$2b$04$67dphjTUxQSGGriOhSBZ/umxtk0stmhJ4VTYhb1sCOkKRy4u2poKS"


@pytest.fixture
def ph(pool):
    """What a migrating app would use: recommended() at the cheap profile, on the private pool."""
    return PasswordHash.recommended(pool=pool, profile=profiles.CHEAP)


def _pwdlib_hashes() -> list[tuple[str, str]]:
    """Hashes of RIGHT made by real pwdlib: cheap Argon2id and bcrypt ($2b$ and $2a$)."""
    pytest.importorskip("pwdlib")
    from pwdlib.hashers.argon2 import Argon2Hasher as PwdlibArgon2
    from pwdlib.hashers.bcrypt import BcryptHasher as PwdlibBcrypt

    return [
        ("argon2id", PwdlibArgon2(time_cost=1, memory_cost=1024, parallelism=1).hash(RIGHT)),
        ("bcrypt-2b", PwdlibBcrypt(rounds=4).hash(RIGHT)),
        ("bcrypt-2a", PwdlibBcrypt(rounds=4, prefix="2a").hash(RIGHT)),
    ]


def _library_hashes() -> list[tuple[str, str]]:
    """Hashes of RIGHT made by argon2-cffi's PasswordHasher and bcrypt.hashpw directly."""
    import argon2
    import bcrypt

    kinds = argon2.low_level.Type
    made = [
        (
            f"argon2-cffi-{kind.name.lower()}",
            argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=2, type=kind).hash(
                RIGHT
            ),
        )
        for kind in (kinds.ID, kinds.I, kinds.D)
    ]
    made.append(("bcrypt-hashpw", bcrypt.hashpw(RIGHT.encode(), bcrypt.gensalt(4)).decode()))
    return made


def _assert_django_format(new: str | None, password: str | bytes) -> None:
    """``new`` is a fresh argon2$ hash (the preferred hasher's) that verifies ``password``."""
    assert new is not None
    assert new.startswith("argon2$argon2id$v=19$m=8,t=1,p=1$"), new
    assert Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1).verify(password, new)


# -- the fixed vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(("encoded", "password"), list(VECTORS.values()), ids=list(VECTORS))
def test_vector_verifies_and_upgrades(ph, encoded, password):
    """Each stored vector verifies its password, not another; the right one gets a Django hash."""
    assert ph.verify(password, encoded) is True
    assert ph.verify(password.encode(), encoded) is True
    assert ph.verify(password + "x", encoded) is False
    assert ph.verify(password.upper(), encoded) is False
    assert ph.verify_and_update("wrong", encoded) == (False, None)
    ok, new = ph.verify_and_update(password, encoded)
    assert ok is True
    _assert_django_format(new, password)
    assert ph.verify_and_update(password, new) == (True, None)


@pytest.mark.parametrize(("encoded", "password"), list(VECTORS.values()), ids=list(VECTORS))
def test_vector_is_read_by_its_reader_only(encoded, password):
    """A bare hash is its reader's and no Django-format hasher's; it always needs an update."""
    reader = PHCArgon2Hasher() if encoded.startswith("$argon2") else MCFBCryptHasher()
    assert reader.can_read(encoded)
    assert reader.must_update(encoded) is True
    assert reader.verify(password, encoded) is True
    assert reader.decode(encoded)["algorithm"] == reader.algorithm
    for hasher in profiles.CHEAP.hashers():
        assert not hasher.can_read(encoded)
        assert hasher.verify(password, encoded) is False
    other = MCFBCryptHasher() if reader.algorithm == "phc_argon2" else PHCArgon2Hasher()
    assert not other.can_read(encoded)


def test_decode_gives_the_parameters():
    """decode() of a pwdlib hash names the variety, version and costs; bcrypt its cost."""
    decoded = PHCArgon2Hasher().decode(VECTORS["pwdlib-argon2id"][0])
    assert decoded["variety"] == "argon2id"
    assert (decoded["version"], decoded["memory_cost"], decoded["time_cost"]) == (19, 1024, 1)
    assert decoded["parallelism"] == 1
    assert PHCArgon2Hasher().decode(VECTORS["argon2i-v16-no-version"][0])["version"] == 16
    decoded = MCFBCryptHasher().decode(VECTORS["pwdlib-bcrypt-2a-unicode"][0])
    assert (decoded["algostr"], decoded["work_factor"]) == ("2a", 4)


# -- real pwdlib, argon2-cffi and bcrypt ---------------------------------------------------


def test_pwdlib_hashes_verify_and_upgrade(ph):
    """Hashes real pwdlib makes verify; the upgrade is a Django-format Argon2id hash."""
    for name, encoded in _pwdlib_hashes():
        assert ph.verify(RIGHT, encoded) is True, name
        assert ph.verify("wrong", encoded) is False, name
        ok, new = ph.verify_and_update(RIGHT, encoded)
        assert ok is True, name
        _assert_django_format(new, RIGHT)


def test_pwdlib_recommended_default_parameters(ph):
    """The FastAPI tutorial's hash: pwdlib's recommended() (t=3, 64 MiB, 4 lanes) is in bounds."""
    pytest.importorskip("pwdlib")
    from pwdlib import PasswordHash as PwdlibHash

    pwdlib = PwdlibHash.recommended()
    encoded = pwdlib.hash(RIGHT)
    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert ph.verify("wrong", encoded) is False
    ok, new = ph.verify_and_update(RIGHT, encoded)
    assert ok
    _assert_django_format(new, RIGHT)


def test_library_hashes_verify_and_upgrade(ph):
    """argon2-cffi's PasswordHasher (id, i, d) and bcrypt.hashpw hashes verify and upgrade."""
    for name, encoded in _library_hashes():
        assert ph.verify(RIGHT, encoded) is True, name
        assert ph.verify(RIGHT[:-1], encoded) is False, name
        ok, new = ph.verify_and_update(RIGHT, encoded)
        assert ok is True, name
        _assert_django_format(new, RIGHT)


@pytest.mark.anyio
async def test_async_twins(ph, pool):
    """averify and averify_and_update answer like the sync methods, on the pool."""
    made = _library_hashes()
    for name, encoded in made:
        assert await ph.averify(RIGHT, encoded) is True, name
        assert await ph.averify("wrong", encoded) is False, name
        assert await ph.averify_and_update("wrong", encoded) == (False, None)
        ok, new = await ph.averify_and_update(RIGHT, encoded)
        assert ok is True, name
        _assert_django_format(new, RIGHT)
        assert await ph.averify_and_update(RIGHT, new) == (True, None)
    assert pool.statistics().completed == 5 * len(made)


@pytest.mark.anyio
async def test_async_pwdlib_vectors(ph):
    """The fixed pwdlib vectors verify and upgrade through the async twins too."""
    for encoded, password in VECTORS.values():
        assert await ph.averify(password, encoded) is True
        ok, new = await ph.averify_and_update(password, encoded)
        assert ok
        _assert_django_format(new, password)


def test_recommended_includes_the_readers():
    """recommended() prefers Django-format Argon2id and reads the bare formats last."""
    ph = PasswordHash.recommended(profile=profiles.CHEAP)
    assert type(ph.preferred) is Argon2Hasher
    assert [type(h) for h in ph.hashers[-2:]] == [PHCArgon2Hasher, MCFBCryptHasher]
    assert ph.hash(RIGHT).startswith("argon2$argon2id$")


# -- identification ------------------------------------------------------------------------


class TestIdentify:
    """Bare prefixes route to the readers; Django's prefixes still route to Django's hashers."""

    HASHERS = (
        *profiles.CHEAP.hashers(),
        BCryptHasher(rounds=4),
        PHCArgon2Hasher(),
        MCFBCryptHasher(),
    )

    def _of(self, kind):
        return next(h for h in self.HASHERS if type(h) is kind)

    def test_bare_formats_go_to_the_readers(self):
        """$argon2id$/$argon2i$/$argon2d$ to PHCArgon2Hasher; $2a$/$2b$/$2y$ to MCFBCryptHasher."""
        for encoded, _ in VECTORS.values():
            hasher = identify_hasher(self.HASHERS, encoded)
            expected = PHCArgon2Hasher if encoded.startswith("$argon2") else MCFBCryptHasher
            assert type(hasher) is expected

    def test_django_formats_keep_their_hashers(self):
        """bcrypt_sha256$$2b$, bcrypt$$2b$ and argon2$argon2id$ are still Django's hashers'."""
        for kind in (BCryptSHA256Hasher, BCryptHasher, Argon2Hasher):
            hasher = self._of(kind)
            encoded = hasher.hash(RIGHT)
            assert identify_hasher(self.HASHERS, encoded) is hasher
            assert not self._of(MCFBCryptHasher).can_read(encoded)
            assert not self._of(PHCArgon2Hasher).can_read(encoded)

    def test_django_bcrypt_sha256_is_not_read_as_bare_bcrypt(self):
        """The bcrypt inside bcrypt_sha256$ is of a SHA-256 digest: the raw password is False."""
        ph = PasswordHash(self.HASHERS)
        django = self._of(BCryptSHA256Hasher).hash(RIGHT)
        bare = django.removeprefix("bcrypt_sha256$")
        assert ph.verify(RIGHT, django) is True
        assert ph.verify(RIGHT, bare) is False

    def test_unconfigured_bare_format_names_the_reader(self):
        """Without the reader, the message names its class and the fixed prefix only."""
        for encoded, _ in VECTORS.values():
            with pytest.raises(
                UnknownAlgorithm, match=r"add (PHCArgon2|MCFBCrypt)Hasher\(\)"
            ) as info:
                identify_hasher(profiles.CHEAP.hashers(), encoded)
            assert encoded.split("$")[-1][-20:] not in str(info.value)

    def test_2x_is_not_read(self):
        """crypt_blowfish's buggy $2x$ computes something else: unknown, so False."""
        encoded = "$2x$" + VECTORS["pwdlib-bcrypt-2b"][0][4:]
        assert not MCFBCryptHasher().can_read(encoded)
        with pytest.raises(UnknownAlgorithm, match="known algorithm name"):
            identify_hasher(self.HASHERS, encoded)
        assert PasswordHash(self.HASHERS).verify(RIGHT, encoded) is False


# -- readers make no hashes ----------------------------------------------------------------


@pytest.mark.parametrize("reader", [PHCArgon2Hasher(), MCFBCryptHasher()], ids=repr)
class TestReadersOnly:
    """The readers verify; they refuse to hash and to come first."""

    def test_hash_encode_and_salt_refuse(self, reader):
        """hash(), encode() and salt() raise NotImplementedError naming a Django-format hasher."""
        for call in (lambda: reader.hash("pw"), lambda: reader.encode("pw", "s"), reader.salt):
            with pytest.raises(NotImplementedError, match="Django-format hasher such as Argon2"):
                call()

    def test_cannot_be_preferred(self, reader):
        """PasswordHash and verify_password refuse a reader first (it would have to hash)."""
        with pytest.raises(ValueError, match="first hasher"):
            PasswordHash([reader, Argon2Hasher()])
        with pytest.raises(ValueError, match="first hasher"):
            verify_password([reader], "pw", "x")

    def test_repr_and_params(self, reader):
        """No cost of their own: params is empty and the repr is the bare class name."""
        assert reader.params == {}
        assert repr(reader) == f"{type(reader).__name__}()"
        assert reader.verify_only is True

    @pytest.mark.parametrize("password", [None, 1, 1.5, ["pw"], bytearray(b"pw")], ids=repr)
    def test_wrong_password_type(self, reader, password):
        """A non-str/bytes password is a TypeError naming the type; None is just False."""
        encoded = next(e for e, _ in VECTORS.values() if reader.can_read(e))
        if password is None:
            assert PasswordHash([PBKDF2Hasher(iterations=1), reader]).verify(None, encoded) is False
            return
        with pytest.raises(TypeError, match="password must be str or bytes"):
            reader.verify(password, encoded)
        with pytest.raises(TypeError, match="password must be str or bytes"):
            PasswordHash([PBKDF2Hasher(iterations=1), reader]).verify(password, encoded)

    def test_wrong_encoded_type(self, reader):
        """A non-str encoded hash is a TypeError; None is unreadable."""
        with pytest.raises(TypeError, match="encoded hash must be str"):
            reader.verify("pw", b"$2b$04$")
        assert reader.verify("pw", None) is False
        assert reader.must_update(None) is False


# -- bcrypt's 72 bytes ---------------------------------------------------------------------


class TestLongBcryptPasswords:
    """A stored bare bcrypt hash holds 72 bytes of the password at most; nothing raises."""

    def test_truncated_hash_admits_its_owner_and_upgrades(self, ph):
        """The owner of a 76-byte password logs in and gets a hash of all 76 bytes."""
        assert ph.verify(LONG, TRUNCATED_LONG) is True
        assert ph.verify(LONG.decode(), TRUNCATED_LONG) is True
        ok, new = ph.verify_and_update(LONG, TRUNCATED_LONG)
        assert ok
        _assert_django_format(new, LONG)
        assert ph.verify(LONG[:72], new) is False  # the truncation ends with the upgrade

    def test_same_72_bytes_match_as_they_did_before(self):
        """Like the library that made the hash, bytes past the 72nd are not compared."""
        reader = MCFBCryptHasher()
        assert reader.verify(LONG[:72], TRUNCATED_LONG) is True
        assert reader.verify(LONG[:72] + b"anything", TRUNCATED_LONG) is True
        assert reader.verify(LONG[:71], TRUNCATED_LONG) is False

    def test_strict_subclass_answers_false(self):
        """truncate_long_passwords = False: over 72 bytes is False, as for BCryptHasher."""

        class Strict(MCFBCryptHasher):
            truncate_long_passwords = False

        assert Strict().verify(LONG, TRUNCATED_LONG) is False
        assert Strict().verify(LONG[:72], TRUNCATED_LONG) is True

    def test_huge_password_never_raises(self, ph):
        """bcrypt 5 raises for more than 72 bytes; the reader answers, in bounded time."""
        start = time.perf_counter()
        assert ph.verify("y" * 1_000_000, TRUNCATED_LONG) is False
        assert ph.verify(LONG + b"z" * 1_000_000, TRUNCATED_LONG) is True
        assert ph.verify("y" * 100, VECTORS["pwdlib-bcrypt-2b"][0]) is False
        assert time.perf_counter() - start < BOUND


# -- hostile and malformed hashes ----------------------------------------------------------

ARGON2 = VECTORS["pwdlib-argon2id"][0]
BCRYPT = VECTORS["pwdlib-bcrypt-2b"][0]
ARGON2_SALT, ARGON2_TAG = ARGON2.split("$")[4:]


def _argon2(params: str, *, head: str = "$argon2id$v=19", salt: str = "", tag: str = "") -> str:
    return f"{head}${params}${salt or ARGON2_SALT}${tag or ARGON2_TAG}"


HOSTILE = {
    # costs the bounds refuse before any work
    "argon2-m-2e32": _argon2("m=4294967295,t=1,p=1"),
    "argon2-m-2gib-plus-1": _argon2("m=2097153,t=1,p=1"),
    "argon2-t-2e31": _argon2("m=1024,t=2147483648,p=1"),
    "argon2-t-65": _argon2("m=1024,t=65,p=1"),
    "argon2-p-2e24": _argon2("m=4294967295,t=1,p=16777216"),
    "argon2-p-65": _argon2("m=65536,t=1,p=65"),
    "argon2-over-max-work": _argon2("m=2097152,t=3,p=4"),
    "argon2-m-under-8-per-lane": _argon2("m=8,t=1,p=2"),
    "argon2-zeros": _argon2("m=0,t=0,p=0"),
    "argon2-13-digits": _argon2("m=1024000000000,t=1,p=1"),
    "argon2-200-digits": _argon2("m=" + "9" * 200 + ",t=1,p=1"),
    # numbers no library writes
    "argon2-leading-zero": _argon2("m=01024,t=1,p=1"),
    "argon2-plus-sign": _argon2("m=+1024,t=1,p=1"),
    "argon2-negative": _argon2("m=1024,t=-1,p=1"),
    "argon2-arabic-digits": _argon2("m=\u0661\u0660\u0662\u0664,t=1,p=1"),
    "argon2-reordered": _argon2("t=1,m=1024,p=1"),
    "argon2-keyid-field": _argon2("m=1024,t=1,p=1,keyid=AAAA"),
    "argon2-version-18": _argon2("m=1024,t=1,p=1", head="$argon2id$v=18"),
    "argon2-version-019": _argon2("m=1024,t=1,p=1", head="$argon2id$v=019"),
    "argon2-unknown-variety": _argon2("m=1024,t=1,p=1", head="$argon2x$v=19"),
    "argon2-upper-case": ARGON2.upper(),
    # salts and tags
    "argon2-salt-7-bytes": _argon2("m=1024,t=1,p=1", salt="c2FsdHNhbH"),
    "argon2-tag-3-bytes": _argon2("m=1024,t=1,p=1", tag="aGFz"),
    "argon2-salt-not-base64": _argon2("m=1024,t=1,p=1", salt="c2Fs*HNhbHQ"),
    "argon2-salt-padded": _argon2("m=1024,t=1,p=1", salt=ARGON2_SALT + "=="),
    "argon2-tag-length-1-mod-4": _argon2("m=1024,t=1,p=1", tag=ARGON2_TAG + "AA"),
    "argon2-tag-spare-bits": _argon2("m=1024,t=1,p=1", tag=ARGON2_TAG[:-1] + "l"),
    "argon2-tag-url-safe": _argon2("m=1024,t=1,p=1", tag=ARGON2_TAG.replace("/", "_")),
    "argon2-no-tag": ARGON2.rsplit("$", 1)[0],
    "argon2-extra-field": ARGON2 + "$AAAA",
    "argon2-truncated-half": ARGON2[: len(ARGON2) // 2],
    "argon2-non-ascii": ARGON2[:-2] + "\u00e9\u00e9",
    "argon2-surrogate": ARGON2[:-1] + "\ud800",
    "argon2-nul": ARGON2[:-1] + "\x00",
    "argon2-trailing-newline": ARGON2 + "\n",
    "argon2-leading-space": " " + ARGON2,
    "argon2-1mb": ARGON2 + "A" * 2**20,
    "argon2-prefix-only": "$argon2id$",
    # bcrypt
    "bcrypt-cost-31": "$2b$31$" + BCRYPT[7:],
    "bcrypt-cost-17": "$2b$17$" + BCRYPT[7:],
    "bcrypt-cost-99": "$2b$99$" + BCRYPT[7:],
    "bcrypt-cost-03": "$2b$03$" + BCRYPT[7:],
    "bcrypt-cost-00": "$2b$00$" + BCRYPT[7:],
    "bcrypt-cost-one-digit": "$2b$4$" + BCRYPT[7:],
    "bcrypt-cost-arabic": "$2b$\u0660\u0664$" + BCRYPT[7:],
    "bcrypt-no-minor": "$2$04$" + BCRYPT[7:],
    "bcrypt-salt-spare-bits": BCRYPT[:28] + "a" + BCRYPT[29:],
    "bcrypt-52-characters": BCRYPT[:-1],
    "bcrypt-54-characters": BCRYPT + "a",
    "bcrypt-standard-base64": BCRYPT[:-1] + "+",
    "bcrypt-non-ascii": BCRYPT[:-1] + "\u00e9",
    "bcrypt-surrogate": BCRYPT[:-1] + "\ud800",
    "bcrypt-nul": BCRYPT[:-1] + "\x00",
    "bcrypt-upper-case-prefix": "$2B$" + BCRYPT[4:],
    "bcrypt-django-bcrypt-without-algorithm": "$" + BCRYPT,
    "bcrypt-prefix-only": "$2b$",
    "dollar-only": "$",
    "empty": "",
}


class CountingArgon2(Argon2Hasher):
    """The cheap preferred Argon2 hasher, recording its hash() calls."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.calls = 0

    def hash(self, password):
        self.calls += 1
        return super().hash(password)


@pytest.mark.parametrize("encoded", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_or_malformed_is_false_fast(encoded):
    """Unreadable to its reader: False, no update, one dummy preferred hash, quickly, no raise."""
    preferred = CountingArgon2()
    ph = PasswordHash([preferred, *PasswordHash.recommended(profile=profiles.CHEAP).hashers[1:]])
    start = time.perf_counter()
    for reader in (PHCArgon2Hasher(), MCFBCryptHasher()):
        assert not reader.can_read(encoded)
        assert reader.verify(RIGHT, encoded) is False
        assert reader.must_update(encoded) is False
        assert reader.harden_runtime(RIGHT, encoded) is None
        with pytest.raises(ValueError, match=f"not a readable {reader.algorithm} hash"):
            reader.decode(encoded)
    assert ph.verify(RIGHT, encoded) is False
    assert ph.verify_and_update(RIGHT, encoded) == (False, None)
    assert preferred.calls == 2  # Django's fake runtime (#20760): one hash per call
    assert time.perf_counter() - start < BOUND


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name", ["argon2-m-2e32", "argon2-t-2e31", "argon2-p-2e24", "bcrypt-cost-31", "empty"]
)
async def test_hostile_async(ph, name):
    """The async twins answer False for hostile bare hashes as quickly."""
    start = time.perf_counter()
    assert await ph.averify(RIGHT, HOSTILE[name]) is False
    assert await ph.averify_and_update(RIGHT, HOSTILE[name]) == (False, None)
    assert time.perf_counter() - start < BOUND


@pytest.mark.parametrize(
    "encoded",
    [
        _argon2("m=2097152,t=2,p=64"),
        _argon2("m=65536,t=64,p=4"),
        "$2b$16$" + BCRYPT[7:],
    ],
    ids=["argon2-2gib-64-lanes", "argon2-64-passes", "bcrypt-16"],
)
def test_costs_up_to_the_bounds_are_readable(encoded):
    """The readers share Argon2Hasher's and BCryptSHA256Hasher's bounds, inclusive."""
    reader = PHCArgon2Hasher() if encoded.startswith("$argon2") else MCFBCryptHasher()
    assert reader.can_read(encoded)
    assert reader.must_update(encoded) is True


def test_correct_login_costs_no_dummy_hash():
    """A readable bare hash is checked for real: no fake-runtime hash, right or wrong."""
    preferred = CountingArgon2()
    hashers = [preferred, PHCArgon2Hasher(), MCFBCryptHasher()]
    for encoded, password in VECTORS.values():
        assert verify_password(hashers, password, encoded) == (True, True)
        assert verify_password(hashers, "wrong", encoded) == (False, True)
    assert preferred.calls == 0


# -- secrets and missing libraries ---------------------------------------------------------

MARKER = "Mk7-loopsafe-migration-marker"


def test_marker_password_never_in_messages_or_reprs():
    """No exception (causes and hidden contexts included) or repr shows the password or hash."""
    readers = [PHCArgon2Hasher(), MCFBCryptHasher()]
    calls = []
    for reader in readers:
        calls += [
            lambda r=reader: r.hash(MARKER),
            lambda r=reader: r.encode(MARKER, MARKER),
            lambda r=reader: r.verify([MARKER], ARGON2),
            lambda r=reader: r.decode(f"$argon2id$v=19$m={MARKER}"),
            lambda r=reader: r.decode(f"$2b$04${MARKER}"),
            lambda r=reader: r.decode(_argon2("m=1024,t=1,p=1", salt=MARKER)),
        ]
    calls += [
        lambda: identify_hasher(profiles.CHEAP.hashers(), f"$argon2id${MARKER}"),
        lambda: identify_hasher(profiles.CHEAP.hashers(), f"$2b${MARKER}"),
        lambda: PasswordHash(readers),
    ]
    texts = [repr(r) for r in readers]
    for call in calls:
        with pytest.raises(Exception) as info:
            call()
        texts += [
            f"{e!s} {e!r} {e.args!r}"
            for e in iter_exception_chain(info.value, follow_suppressed=True)
        ]
    assert not [text for text in texts if MARKER in text]
    assert len(texts) > len(calls)


def test_without_bcrypt_recommended_leaves_its_reader_out():
    """Without bcrypt, recommended() has no MCFBCryptHasher and bare bcrypt verifies False."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["bcrypt"] = None  # as if not installed
        from loopsafe import HasherNotAvailable, MCFBCryptHasher, PasswordHash, profiles
        ph = PasswordHash.recommended(profile=profiles.CHEAP)
        names = [type(h).__name__ for h in ph.hashers]
        assert "PHCArgon2Hasher" in names and "MCFBCryptHasher" not in names, names
        assert ph.verify({RIGHT!r}, {BCRYPT!r}) is False
        assert ph.verify({RIGHT!r}, {ARGON2!r}) is True
        try:
            MCFBCryptHasher().verify("pw", {BCRYPT!r})
        except HasherNotAvailable as exc:
            assert "pip install 'loopsafe[bcrypt]'" in str(exc), str(exc)
        else:
            raise AssertionError("no HasherNotAvailable")
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
