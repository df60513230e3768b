"""Bad input through the public API: every hasher, sync and async, never a surprise.

The matrix crosses every hasher of the cheap profile with the facade's sync
methods and their async twins (which run the same work on a `HashPool`), over
bad passwords and malformed encoded hashes. Each call must answer False (or
``(False, None)``), a hash, or the documented ``TypeError``/``ValueError``, the
sync and async twin must agree, and each must finish within `CALL_BOUND`.

Encoded hashes whose parameters are representable but absurd (2**31 PBKDF2
iterations, bcrypt cost 31, 4 TiB of Argon2 memory) would run for hours if a
hasher trusted them, so those run in a child interpreter under a memory limit
that is killed at the bound.

The bare formats other libraries store (``phc_argon2``: argon2-cffi's
``$argon2id$...``, as pwdlib and passlib write it; ``mcf_bcrypt``:
``bcrypt.hashpw``'s ``$2b$...``) go through the verify and encoded-hash cases
too, read by `PHCArgon2Hasher` and `MCFBCryptHasher` behind a PBKDF2 preferred
hasher: the readers make no hashes, so the hashing cases leave them out.
"""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from typing import TYPE_CHECKING

import pytest

from _support import CALL_BOUND, aoutcome, cheap_algorithms, facade_for, outcome, run_child
from loopsafe import HasherNotAvailable, MCFBCryptHasher, PasswordHash, PHCArgon2Hasher

if TYPE_CHECKING:
    from collections.abc import Callable

    from _support import Outcome
    from loopsafe import Hasher

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """The matrix runs on asyncio alone; the loops' equivalence is pinned in test_event_loops.py.

    Crossing every bad input with every event loop tested the loops hundreds of
    times over and the inputs no better.
    """
    return ("asyncio", {})


ALGORITHMS = cheap_algorithms()
RIGHT = "correct horse battery staple"


def _bare_argon2() -> str:
    import argon2

    return argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(RIGHT)


def _bare_bcrypt() -> str:
    import bcrypt

    return bcrypt.hashpw(RIGHT.encode(), bcrypt.gensalt(4)).decode()


def _available_readers() -> dict[str, tuple[Hasher, Callable[[], str]]]:
    """Return the readers whose library is installed, with a maker of a cheap hash of `RIGHT`."""
    readers = {}
    for reader, make in ((PHCArgon2Hasher(), _bare_argon2), (MCFBCryptHasher(), _bare_bcrypt)):
        try:
            reader.check_available()
        except HasherNotAvailable:
            continue
        readers[reader.algorithm] = (reader, make)
    return readers


#: The readers of bare formats, by algorithm name.
BARE = _available_readers()
#: Every format verify is tried on: the hashers' and the bare ones.
VERIFIED = [*ALGORITHMS, *BARE]


def _facade(algorithm: str) -> PasswordHash:
    """`facade_for`, or for a bare format PBKDF2 preferred and the readers after every hasher."""
    if algorithm not in BARE:
        return facade_for(algorithm)
    hashers = facade_for("pbkdf2_sha256").hashers
    return PasswordHash([*hashers, *(reader for reader, _ in BARE.values())])


def _encoded(algorithm: str) -> str:
    """Return a valid encoded hash of `RIGHT` made by ``algorithm`` at the cheap profile."""
    if algorithm in BARE:
        return BARE[algorithm][1]()
    return facade_for(algorithm).hash(RIGHT)


def _check(result: Outcome, allowed: set[str], errors: tuple[type[Exception], ...] = ()) -> None:
    """Fail unless ``result`` is an allowed value kind or one of ``errors``, within the bound."""
    assert result.seconds < CALL_BOUND, f"unbounded work: {result}"
    if isinstance(result.value, Exception):
        assert isinstance(result.value, errors), f"unexpected {result!r}: {result.value!r}"
    else:
        assert result.kind in allowed, f"unexpected {result}"


# -- passwords --------------------------------------------------------------------------

# (value, what verify may answer, errors it may raise instead)
FALSE = {"False"}
TYPE = (TypeError,)
VALUE = (ValueError,)  # includes UnicodeEncodeError
PASSWORDS = [
    pytest.param(None, FALSE, (), id="none"),
    pytest.param("", FALSE, (), id="empty"),
    pytest.param(0, set(), TYPE, id="int-zero"),
    pytest.param(2**100, set(), TYPE, id="int-huge"),
    pytest.param(True, set(), TYPE, id="bool"),
    pytest.param(1.5, set(), TYPE, id="float"),
    pytest.param(["pw"], set(), TYPE, id="list"),
    pytest.param(bytearray(b"pw"), set(), TYPE, id="bytearray"),
    pytest.param(b"\xff\xfe\xfd", FALSE, VALUE, id="bytes-not-utf8"),
    pytest.param(b"\x80lone-continuation", FALSE, VALUE, id="bytes-lone-continuation"),
    pytest.param("\ud800surrogate", FALSE, VALUE, id="str-lone-surrogate"),
    pytest.param("pass\x00word", FALSE, VALUE, id="nul-inside"),
    pytest.param("\x00", FALSE, VALUE, id="nul-only"),
    pytest.param(b"\x00" * 8, FALSE, VALUE, id="bytes-all-nul"),
    pytest.param(" \t\r\n", FALSE, (), id="whitespace-only"),
    pytest.param("\u202epassword", FALSE, (), id="bidi-override"),
    pytest.param("\U0001f511" * 20, FALSE, (), id="astral-emoji"),
    pytest.param("a" * 73, FALSE, VALUE, id="73-bytes"),
    pytest.param("a" * 2**20, FALSE, VALUE, id="1mb-ascii"),
    pytest.param("\u00e9" * 2**19, FALSE, VALUE, id="1mb-two-byte-utf8"),
    pytest.param(b"\xff" * 2**20, FALSE, VALUE, id="1mb-bytes-not-utf8"),
    pytest.param(RIGHT.upper(), FALSE, (), id="right-uppercased"),
]


@pytest.mark.parametrize("algorithm", VERIFIED)
@pytest.mark.parametrize(("password", "allowed", "errors"), PASSWORDS)
async def test_verify_bad_password(algorithm, password, allowed, errors):
    """A bad password verifies False (or raises TypeError/ValueError), the same sync and async."""
    ph = _facade(algorithm)
    encoded = _encoded(algorithm)
    pairs: list[tuple[Callable[[], object], Callable[[], object], set[str]]] = [
        (lambda: ph.verify(password, encoded), lambda: ph.averify(password, encoded), allowed),
        (
            lambda: ph.verify_and_update(password, encoded),
            lambda: ph.averify_and_update(password, encoded),
            {f"({kind}, None)" for kind in allowed},
        ),
    ]
    for sync, async_, kinds in pairs:
        sync_result = outcome(sync)
        async_result = await aoutcome(async_)  # type: ignore[arg-type]
        _check(sync_result, kinds, errors)
        _check(async_result, kinds, errors)
        assert sync_result.kind == async_result.kind, (sync_result, async_result)


HASHABLE = [
    p
    for p in PASSWORDS
    if p.values[0] is not None and p.values[2] != TYPE and p.id != "right-uppercased"
]
UNHASHABLE = [p for p in PASSWORDS if p.values[0] is None or p.values[2] == TYPE]


def _hash_refuses(algorithm: str, password: str | bytes) -> bool:
    """The documented ValueErrors of hash: no UTF-8 form, or over plain bcrypt's 72 bytes."""
    try:
        secret = password if isinstance(password, bytes) else password.encode()
    except UnicodeEncodeError:
        return True
    return algorithm == "bcrypt" and len(secret) > 72


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("password", "allowed", "errors"), HASHABLE)
async def test_hash_odd_password_round_trips(algorithm, password, allowed, errors):
    """An odd but typed password hashes (or raises ValueError) and then verifies, sync and async."""
    del allowed, errors
    ph = facade_for(algorithm)
    sync_result = outcome(lambda: ph.hash(password))
    async_result = await aoutcome(lambda: ph.ahash(password))
    _check(sync_result, {"str"}, VALUE)
    _check(async_result, {"str"}, VALUE)
    assert sync_result.kind == async_result.kind, (sync_result, async_result)
    if sync_result.kind != "str":
        assert _hash_refuses(algorithm, password), sync_result
        return
    assert not _hash_refuses(algorithm, password)
    for made in (sync_result.value, async_result.value):
        assert isinstance(made, str)
        assert made.startswith(f"{ph.preferred.algorithm}$")
        assert ph.verify(password, made) is True
        assert await ph.averify(password, made) is True
        assert ph.verify(RIGHT, made) is False


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("password", "allowed", "errors"), UNHASHABLE)
async def test_hash_untyped_password_raises_type_error(algorithm, password, allowed, errors):
    """None or a non-str/bytes password is a TypeError for hash and ahash, before any work."""
    del allowed, errors
    ph = facade_for(algorithm)
    with pytest.raises(TypeError, match="password must be str or bytes"):
        ph.hash(password)
    with pytest.raises(TypeError, match="password must be str or bytes"):
        await ph.ahash(password)


#: HMAC zero-pads a key shorter than its block, so PBKDF2 (and scrypt, whose
#: first step is PBKDF2-HMAC-SHA256) cannot tell "pw" from "pw\\x00". Django's
#: own hashers answer the same; Argon2 and bcrypt-SHA256 hash the length in.
TRAILING_NUL_MATCHES = {"pbkdf2_sha256", "pbkdf2_sha1", "scrypt"}


@pytest.mark.parametrize("algorithm", VERIFIED)
async def test_trailing_nul_answers_like_django(algorithm):
    """The right password plus trailing NULs matches exactly where Django's hashers match it."""
    ph = _facade(algorithm)
    encoded = _encoded(algorithm)
    expected = algorithm in TRAILING_NUL_MATCHES
    for password in (RIGHT + "\x00", RIGHT + "\x00" * 3, (RIGHT + "\x00").encode()):
        assert ph.verify(password, encoded) is expected
        assert await ph.averify(password, encoded) is expected
    assert ph.verify(RIGHT + "\x00x", encoded) is False


NFC = unicodedata.normalize("NFC", "caf\u00e9 \u212b \ufb01")
NFD = unicodedata.normalize("NFD", NFC)
NFKC = unicodedata.normalize("NFKC", NFC)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("stored", "typed", "expected"),
    [
        pytest.param(NFC, NFC, True, id="nfc-typed-as-nfc"),
        pytest.param(NFD, NFD, True, id="nfd-typed-as-nfd"),
        pytest.param(NFC, NFD, False, id="nfc-typed-as-nfd"),
        pytest.param(NFD, NFC, False, id="nfd-typed-as-nfc"),
        pytest.param(NFC, NFKC, False, id="nfc-typed-as-nfkc"),
    ],
)
async def test_unicode_forms_are_not_normalised(algorithm, stored, typed, expected):
    """Like Django, passwords are compared as code points: NFC and NFD forms differ."""
    assert stored == typed or expected is False
    ph = facade_for(algorithm)
    encoded = ph.hash(stored)
    assert ph.verify(typed, encoded) is expected
    assert await ph.averify(typed, encoded) is expected
    assert ph.verify(typed.encode(), encoded) is expected


# -- encoded hashes ---------------------------------------------------------------------

#: Where each format keeps its numeric parameters: (field index, argon2 sub-key or "").
PARAM_SLOTS: dict[str, dict[str, tuple[int, str]]] = {
    "pbkdf2_sha256": {"iterations": (1, "")},
    "pbkdf2_sha1": {"iterations": (1, "")},
    "argon2": {"m": (3, "m"), "t": (3, "t"), "p": (3, "p"), "v": (2, "v")},
    "bcrypt_sha256": {"rounds": (3, "")},
    "bcrypt": {"rounds": (3, "")},
    "scrypt": {"work_factor": (1, ""), "block_size": (3, ""), "parallelism": (4, "")},
    "phc_argon2": {"m": (3, "m"), "t": (3, "t"), "p": (3, "p"), "v": (2, "v")},
    "mcf_bcrypt": {"rounds": (2, "")},
}

#: Values that are not a usable parameter: the hash must verify False.
BROKEN_NUMBERS = {
    "letters": "abc",
    "empty": "",
    "negative": "-1",
    "zero": "0",
    "fraction": "1.5",
    "exponent": "1e3",
    "hex": "0x10",
    "nan": "NaN",
    "superscript-two": "\u00b2",  # str.isdigit() is True, int() refuses it
    "beyond-int64": "9" * 30,
}


def _set_param(encoded: str, field: int, key: str, value: str) -> str:
    fields = encoded.split("$")
    if key:
        fields[field] = re.sub(rf"(^|,){key}=[^,]*", rf"\g<1>{key}={value}", fields[field])
        if key == "v":
            fields[field] = f"v={value}"
    else:
        fields[field] = value
    return "$".join(fields)


def _param_value(encoded: str, field: int, key: str) -> str:
    part = encoded.split("$")[field]
    if not key:
        return part
    found = re.search(rf"(?:^|,){key}=([^,]*)", part)
    assert found is not None, (encoded, key)
    return found.group(1)


def _structural(encoded: str) -> dict[str, str]:
    """Malformed variants of a valid encoded hash that any format must refuse."""
    fields = encoded.split("$")
    algorithm = fields[0]
    # What names the format: the algorithm, or a bare format's second field
    # ("$argon2id$...", "$2b$..."), whose first one is empty.
    at = 0 if algorithm else 1

    def renamed(name: str) -> str:
        return "$".join([*fields[:at], name, *fields[at + 1 :]])

    return {
        "empty": "",
        "dollar-only": "$",
        "algorithm-only": algorithm,
        "algorithm-and-dollar": f"{algorithm}$",
        "truncated-half": encoded[: len(encoded) // 2],
        "truncated-one-char": encoded[:-1],
        "missing-last-field": "$".join(fields[:-1]),
        "missing-second-field": "$".join([fields[0], *fields[2:]]),
        "extra-field": f"{encoded}$extra",
        "all-fields-empty": "$".join([algorithm, *[""] * (len(fields) - 1)]),
        "thousand-dollars": algorithm + "$" * 1000,
        "unknown-algorithm": renamed("nosuchalgorithm"),
        "algorithm-uppercased": renamed(fields[at].upper()),
        "algorithm-with-space": renamed(f" {fields[at]}"),
        "trailing-newline": f"{encoded}\n",
        "nul-in-digest": encoded[:-1] + "\x00",
        "non-ascii-digest": f"{encoded}\u00e9",
        "digest-not-base64": "$".join([*fields[:-1], "!!!not*base64!!!"]),
        "digest-doubled": "$".join([*fields[:-1], fields[-1] * 2]),
        "digest-1mb": encoded + "A" * 2**20,
        "unusable-bang": "!",
        "unusable-django-style": "!" + "x" * 40,
        "bang-before-valid": f"!{encoded}",
    }


def _encoded_cases() -> list[object]:
    cases: list[object] = []
    for algorithm in VERIFIED:
        valid = _encoded(algorithm)
        for name, broken in _structural(valid).items():
            cases.append(pytest.param(algorithm, broken, FALSE, id=f"{algorithm}-{name}"))
        for param, (field, key) in PARAM_SLOTS.get(algorithm, {}).items():
            original = _param_value(valid, field, key)
            for name, number in BROKEN_NUMBERS.items():
                broken = _set_param(valid, field, key, number)
                cases.append(
                    pytest.param(algorithm, broken, FALSE, id=f"{algorithm}-{param}-{name}")
                )
            # The same number spelled another way: Python's int() reads some of
            # these, so True or False are both fine; anything else is not.
            spellings = {
                "leading-space": f" {original}",
                "plus-sign": f"+{original}",
                "leading-zero": f"0{original}",
                "underscore": "_".join(original) if len(original) > 1 else f"{original}_",
                "arabic-indic-digits": original.translate(
                    str.maketrans(
                        "0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"
                    )
                ),
            }
            for name, number in spellings.items():
                broken = _set_param(valid, field, key, number)
                cases.append(
                    pytest.param(
                        algorithm, broken, {"True", "False"}, id=f"{algorithm}-{param}-{name}"
                    )
                )
    return cases


@pytest.mark.parametrize(("algorithm", "encoded", "allowed"), _encoded_cases())
async def test_malformed_hash_verifies_false(algorithm, encoded, allowed):
    """A malformed or unusable hash verifies False and never raises, sync and async."""
    ph = _facade(algorithm)
    for password in (RIGHT, "wrong", None):
        kinds = allowed if password == RIGHT else FALSE
        pairs = [
            (
                lambda pw=password: ph.verify(pw, encoded),
                lambda pw=password: ph.averify(pw, encoded),
                kinds,
            ),
            (
                lambda pw=password: ph.verify_and_update(pw, encoded),
                lambda pw=password: ph.averify_and_update(pw, encoded),
                {f"({kind}, None)" for kind in kinds}
                | ({"(True, str)"} if "True" in kinds else set()),
            ),
        ]
        for sync, async_, expected in pairs:
            sync_result = outcome(sync)
            async_result = await aoutcome(async_)
            _check(sync_result, expected)
            _check(async_result, expected)
            assert sync_result.kind == async_result.kind, (sync_result, async_result)


def _surrogate_cases() -> list[object]:
    cases: list[object] = []
    for algorithm in VERIFIED:
        fields = _encoded(algorithm).split("$")
        for index in range(1, len(fields)):
            cases.append(pytest.param(algorithm, index, id=f"{algorithm}-field-{index}"))
    return cases


@pytest.mark.parametrize(("algorithm", "index"), _surrogate_cases())
async def test_surrogate_in_stored_hash_verifies_false(algorithm, index):
    """A stored hash with a lone surrogate in any field verifies False, sync and async."""
    fields = _encoded(algorithm).split("$")
    fields[index] = "\ud800" + fields[index]
    encoded = "$".join(fields)
    ph = _facade(algorithm)
    _check(outcome(lambda: ph.verify(RIGHT, encoded)), FALSE)
    _check(await aoutcome(lambda: ph.averify(RIGHT, encoded)), FALSE)


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        pytest.param(None, "False", id="none"),
        pytest.param(b"pbkdf2_sha256$1$salt$hash", "TypeError", id="bytes"),
        pytest.param(12345, "TypeError", id="int"),
        pytest.param(["pbkdf2_sha256"], "TypeError", id="list"),
    ],
)
async def test_untyped_hash(encoded, expected):
    """A None hash verifies False; a hash that is not str is a TypeError, sync and async."""
    ph = facade_for(ALGORITHMS[0])
    for sync, async_ in [
        (lambda: ph.verify(RIGHT, encoded), lambda: ph.averify(RIGHT, encoded)),
        (
            lambda: ph.verify_and_update(RIGHT, encoded),
            lambda: ph.averify_and_update(RIGHT, encoded),
        ),
    ]:
        sync_result, async_result = outcome(sync), await aoutcome(async_)
        assert sync_result.kind.startswith((expected, f"({expected}")), sync_result
        assert async_result.kind == sync_result.kind


# -- absurd but representable parameters, in a bounded child ---------------------------

#: The child runs the four verify paths on one encoded hash under a 2 GiB
#: address-space limit, so a hasher that trusts the parameters fails to
#: allocate (or runs past the bound and is killed) instead of hurting the machine.
CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from loopsafe import (
        HashPool, HasherNotAvailable, MCFBCryptHasher, PasswordHash, PHCArgon2Hasher, profiles
    )

    algorithm, encoded, password = sys.argv[1], sys.argv[2], sys.argv[3]
    hashers = []
    for hasher in profiles.CHEAP.hashers():
        try:
            hasher.salt()
        except HasherNotAvailable:
            continue
        hashers.append(hasher)
    hashers.sort(key=lambda h: h.algorithm != algorithm)
    # The readers of bare formats go last: they make no hashes, so a bare
    # format's case keeps PBKDF2 (the profile's first) preferred.
    for reader in (PHCArgon2Hasher(), MCFBCryptHasher()):
        try:
            reader.check_available()
        except HasherNotAvailable:
            continue
        hashers.append(reader)
    pool = HashPool(1)
    ph = PasswordHash(hashers, pool=pool)

    def run(name, fn):
        start = time.perf_counter()
        try:
            value = fn()
            kind = repr(value if isinstance(value, bool) else (value[0], value[1] is not None))
        except Exception as exc:
            kind = type(exc).__name__
        print(json.dumps([name, kind, time.perf_counter() - start]), flush=True)

    run("verify", lambda: ph.verify(password, encoded))
    run("verify_and_update", lambda: ph.verify_and_update(password, encoded))
    run("averify", lambda: asyncio.run(ph.averify(password, encoded)))
    run("averify_and_update", lambda: asyncio.run(ph.averify_and_update(password, encoded)))
    """
)

ABSURD = {
    "pbkdf2_sha256": {"iterations": ["2147483647", "1000000000000"]},
    "pbkdf2_sha1": {"iterations": ["2147483647"]},
    "argon2": {"t": ["4294967295"], "m": ["4294967295"], "p": ["16777215"]},
    "bcrypt_sha256": {"rounds": ["31"]},
    "bcrypt": {"rounds": ["31"]},
    "phc_argon2": {"t": ["4294967295"], "m": ["4294967295"], "p": ["16777215"]},
    "mcf_bcrypt": {"rounds": ["31"]},
    "scrypt": {
        "work_factor": ["1099511627776", "16777216"],
        "block_size": ["1073741824"],
        "parallelism": ["1073741824"],
    },
}


def _absurd_cases() -> list[object]:
    cases: list[object] = []
    for algorithm in VERIFIED:
        for param, numbers in ABSURD.get(algorithm, {}).items():
            field, key = PARAM_SLOTS[algorithm][param]
            for number in numbers:
                cases.append(
                    pytest.param(algorithm, field, key, number, id=f"{algorithm}-{param}-{number}")
                )
    return cases


@pytest.mark.parametrize(("algorithm", "field", "key", "number"), _absurd_cases())
def test_absurd_parameters_are_bounded(algorithm, field, key, number):
    """A hash asking for absurd work verifies False quickly instead of running for hours."""
    encoded = _set_param(_encoded(algorithm), field, key, number)
    result = run_child(CHILD, algorithm, encoded, RIGHT, timeout=4 * CALL_BOUND)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    answered = {name: (kind, seconds) for name, kind, seconds in lines}
    assert result.returncode is not None, (
        f"killed after {result.seconds:.0f}s: unbounded work; answered {answered}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(answered) == 4, (answered, result.stderr[-2000:])
    for name, (kind, seconds) in answered.items():
        assert kind in {"False", "(False, False)"}, (name, kind)
        assert seconds < CALL_BOUND, (name, seconds)
