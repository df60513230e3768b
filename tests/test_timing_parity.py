"""Timing parity of the async verify paths: unknown user, wrong, unusable, malformed, right.

Runs ``benchmarks/timing_parity.py``'s measurement with parameters cheap
enough for a test but far above the pool's own overhead (each hash takes
milliseconds), prints the table, and gates on a generous bound: every case's
median within 3x of the right-password median. The gate always applies; a
missing dummy hash (the bug this guards against) shows as a ratio near 0.01,
so noise on a shared machine does not come near it. MD5 is printed but not
gated: a hash that takes microseconds measures the pool, not the hasher. The
corrupt-hash column (a known algorithm with an unreadable field) is printed
but not gated; `test_corrupt_hash_of_known_algorithm_spends_one_hash` pins it
down without a clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from _support import load_benchmark, report
from loopsafe import (
    Argon2Hasher,
    BCryptHasher,
    BCryptSHA256Hasher,
    MD5Hasher,
    PasswordHash,
    PBKDF2Hasher,
    PBKDF2SHA1Hasher,
    ScryptHasher,
)

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TOLERANCE = 3.0


def _parity_module():
    return load_benchmark("timing_parity")


def _not_trivial_hashers() -> list[object]:
    """Parameters at which one hash costs roughly 5-30 ms on a current core."""
    return [
        PBKDF2Hasher(iterations=40_000),
        PBKDF2SHA1Hasher(iterations=40_000),
        Argon2Hasher(time_cost=2, memory_cost=8192, parallelism=2),
        BCryptSHA256Hasher(rounds=7),
        BCryptHasher(rounds=7),
        ScryptHasher(work_factor=2**12, block_size=8, parallelism=2),
        MD5Hasher(),
    ]


@pytest.mark.slow
def test_async_verify_paths_take_alike():
    """Unknown user, wrong, unusable and malformed each take within 3x of a right password."""
    parity = _parity_module()
    rows = asyncio.run(parity.measure(_not_trivial_hashers(), runs=9))
    report(parity.format_table(rows))
    assert {row.algorithm for row in rows} >= {"pbkdf2_sha256", "scrypt"}
    for row in rows:
        if row.algorithm == "md5":
            continue
        assert row.worst_ratio() < TOLERANCE, (row.algorithm, row.ratios())


class _Counting(PBKDF2Hasher):
    """PBKDF2 that counts the hashes it makes and the verifications it runs."""

    def __init__(self) -> None:
        super().__init__(iterations=1000)
        self.work = 0

    def hash(self, password):
        self.work += 1
        return super().hash(password)

    def _verify(self, password, decoded):
        self.work += 1
        return super()._verify(password, decoded)


@pytest.mark.parametrize(
    ("encoded", "work"),
    [
        pytest.param("pbkdf2_sha256$1000$c2FsdA$ZGlnZXN0", 1, id="wrong-digest"),
        pytest.param("!unusable", 1, id="unusable"),
        pytest.param("nosuchalgorithm$1$salt$digest", 1, id="unknown-algorithm"),
        pytest.param(None, 1, id="no-hash"),
    ],
)
def test_each_false_path_spends_one_hash(encoded, work):
    """Wrong digest, unusable, unknown algorithm and missing hash each cost exactly one hash."""
    hasher = _Counting()
    ph = PasswordHash([hasher])
    assert ph.verify("password", encoded) is False
    assert hasher.work == work


@pytest.mark.parametrize(
    "encoded",
    [
        pytest.param("pbkdf2_sha256$not-a-number$salt$digest", id="non-numeric-iterations"),
        pytest.param("pbkdf2_sha256$1000$salt", id="missing-field"),
        pytest.param("pbkdf2_sha256$99999999999$salt$digest", id="iterations-above-bound"),
    ],
)
def test_corrupt_hash_of_known_algorithm_spends_one_hash(encoded):
    """A known algorithm's hash with unreadable fields costs one hash, like a wrong password."""
    hasher = _Counting()
    ph = PasswordHash([hasher])
    assert ph.verify("password", encoded) is False
    assert hasher.work == 1
