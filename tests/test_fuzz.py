"""Hypothesis fuzzing of the encoded-hash parser and `verify`, sync and async.

Three kinds of input: near-valid Django-format strings (a real hash of each
algorithm with one to three fields mutated, deleted, duplicated or swapped,
characters inserted, or the string cut short), random text (surrogates, NUL,
``$`` and ``!`` included), and random passwords against valid hashes.
Properties: `verify` of a str hash answers a bool and never raises; the async
twin answers the same; ``identify_hasher`` answers a hasher or
``UnknownAlgorithm``/``ValueError``; and each example finishes within
`EXAMPLE_BOUND`, far above a cheap verify (milliseconds).

Numeric fields are fuzzed over small and over unrepresentable (> 2**64)
values; values that are representable but absurd (2**31 iterations) would make
an unguarded hasher run for hours in this process, so they are tried in a
memory-limited child process by ``test_bad_input.py`` instead.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _support import cheap_hashers, facade_for
from loopsafe import PasswordHash, UnknownAlgorithm
from loopsafe.hashers import identify_hasher

if TYPE_CHECKING:
    from collections.abc import Iterator

RIGHT = "correct horse battery staple"
EXAMPLE_BOUND = 5.0
SETTINGS = settings(
    max_examples=150,
    deadline=None,  # timed by hand against EXAMPLE_BOUND instead
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HASHERS = cheap_hashers()
PH = PasswordHash(HASHERS)
VALID = {hasher.algorithm: facade_for(hasher.algorithm).hash(RIGHT) for hasher in HASHERS}
ALL_CHARS = st.characters(exclude_categories=())  # surrogates too
HASH_CHARS = ALL_CHARS
SPECIAL = st.sampled_from(["$", "!", "\x00", "=", ",", " ", "\n", "\u00e9", "\U0001f511"])


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for every example of the module (an asyncio.run each would dominate)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _numbers(original: str) -> st.SearchStrategy[str]:
    """Numbers for a numeric field: small ones, and ones too big for any C integer."""
    cap = 2 * int(original) if original.isdecimal() else 64
    return st.one_of(
        st.integers(-1000, max(cap, 2)).map(str),
        st.integers(2**64, 2**200).map(str),
        st.sampled_from(["", "-0", "1e3", "0x10", "\u00b2", "\u0661\u0662", "nan", " 1"]),
    )


def _argon2_params(original: str) -> st.SearchStrategy[str]:
    keys = st.sampled_from(["m", "t", "p", "x", ""])
    pairs = st.lists(st.tuples(keys, _numbers("8")), max_size=5)
    return st.one_of(
        pairs.map(lambda kv: ",".join(f"{k}={v}" if k else v for k, v in kv)),
        st.just(original.replace(",", "")),
        st.just(original + "," + original),
    )


def _insert_special(draw: st.DrawFn, fields: list[str], i: int) -> list[str]:
    at = draw(st.integers(0, len(fields[i])))
    return [*fields[:i], fields[i][:at] + draw(SPECIAL) + fields[i][at:], *fields[i + 1 :]]


def _swap(draw: st.DrawFn, fields: list[str], i: int) -> list[str]:
    j = draw(st.integers(0, len(fields) - 1))
    swapped = list(fields)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    return swapped


def _argon2(draw: st.DrawFn, fields: list[str], i: int) -> list[str]:
    del i
    if fields[0] != "argon2" or len(fields) < 4:
        return fields
    return [*fields[:3], draw(_argon2_params(fields[3])), *fields[4:]]


#: Each mutation takes (draw, fields, index) and returns the new fields.
MUTATIONS = {
    "number": lambda d, f, i: [*f[:i], d(_numbers(f[i])), *f[i + 1 :]],
    "text": lambda d, f, i: [*f[:i], d(st.text(HASH_CHARS, max_size=40)), *f[i + 1 :]],
    "special": _insert_special,
    "delete": lambda _d, f, i: [*f[:i], *f[i + 1 :]] if len(f) > 1 else f,
    "duplicate": lambda _d, f, i: [*f[: i + 1], *f[i:]],
    "swap": _swap,
    "cut": lambda d, f, i: [*f[:i], f[i][: d(st.integers(0, len(f[i])))], *f[i + 1 :]],
    "argon2": _argon2,
}


@st.composite
def near_valid(draw: st.DrawFn) -> str:
    """A real encoded hash with one to three fields broken."""
    fields = VALID[draw(st.sampled_from(sorted(VALID)))].split("$")
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(fields) - 1))
        fields = MUTATIONS[draw(st.sampled_from(sorted(MUTATIONS)))](draw, fields, index)
    encoded = "$".join(fields)
    if draw(st.booleans()) and draw(st.booleans()):
        encoded = draw(st.sampled_from(["!", " ", "\x00"])) + encoded
    return encoded


RANDOM_TEXT = st.one_of(
    st.text(HASH_CHARS, max_size=200),
    st.lists(st.text(HASH_CHARS, max_size=12), max_size=8).map("$".join),
    st.builds(
        lambda algorithm, rest: f"{algorithm}${rest}",
        st.sampled_from([*sorted(VALID), "argon2$argon2i", "argon2$argon2d", "unknown"]),
        st.text(HASH_CHARS, max_size=100),
    ),
)


def _verify_everywhere(loop: asyncio.AbstractEventLoop, password: object, encoded: str) -> bool:
    """Verify on every path; all must agree and answer within the bound; return the answer."""
    start = time.perf_counter()
    sync = PH.verify(password, encoded)  # type: ignore[arg-type]
    ok, new = PH.verify_and_update(password, encoded)  # type: ignore[arg-type]
    async_ = loop.run_until_complete(PH.averify(password, encoded))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert isinstance(sync, bool)
    assert ok is sync
    assert async_ is sync
    assert new is None or (ok and isinstance(new, str))
    assert elapsed < EXAMPLE_BOUND, f"{elapsed:.2f}s for {encoded!r}"
    return sync


@settings(SETTINGS, max_examples=300)
@given(encoded=near_valid())
def test_near_valid_hashes_verify_to_a_bool(loop, encoded):
    """A broken real hash verifies to a bool on every path, quickly, and never raises."""
    result = _verify_everywhere(loop, RIGHT, encoded)
    if encoded in VALID.values():
        assert result is True
    assert _verify_everywhere(loop, "wrong", encoded) is False
    assert _verify_everywhere(loop, None, encoded) is False


@SETTINGS
@given(encoded=RANDOM_TEXT)
def test_random_text_verifies_false(loop, encoded):
    """Random text as an encoded hash verifies False on every path, quickly, and never raises."""
    assert _verify_everywhere(loop, RIGHT, encoded) is False


@SETTINGS
@given(encoded=st.one_of(near_valid(), RANDOM_TEXT))
def test_identify_hasher_answers_a_hasher_or_value_error(encoded):
    """identify_hasher returns a configured hasher or raises UnknownAlgorithm, nothing else."""
    start = time.perf_counter()
    try:
        hasher = identify_hasher(HASHERS, encoded)
    except UnknownAlgorithm:
        pass
    else:
        assert hasher in HASHERS
        assert encoded.startswith(hasher.algorithm + "$")
    assert time.perf_counter() - start < EXAMPLE_BOUND


@SETTINGS
@given(
    algorithm=st.sampled_from(sorted(VALID)),
    password=st.one_of(st.text(ALL_CHARS, max_size=300), st.binary(max_size=300)),
)
def test_random_passwords_verify_false_or_value_error(loop, algorithm, password):
    """A random password against a valid hash is False (or ValueError, e.g. a lone surrogate)."""
    encoded = VALID[algorithm]
    start = time.perf_counter()
    try:
        sync = PH.verify(password, encoded)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            loop.run_until_complete(PH.averify(password, encoded))
    else:
        expected = password in {RIGHT, RIGHT.encode()}
        assert sync is expected
        assert loop.run_until_complete(PH.averify(password, encoded)) is expected
    assert time.perf_counter() - start < EXAMPLE_BOUND
