"""A PBKDF2-SHA256 hasher at test cost, and the helpers that make outdated hashes of it."""

from __future__ import annotations

import threading

from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher

#: Iterations of the configured (preferred) hasher.
ITERATIONS = 100_000
#: Iterations of an "old" hash that must be upgraded at the next login.
OLD_ITERATIONS = 20_000


class TestPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 (same algorithm name) at ``ITERATIONS``."""

    iterations = ITERATIONS


def old_hash(password: str) -> str:
    """Return a pbkdf2_sha256 hash of ``password`` at ``OLD_ITERATIONS`` (it must be upgraded)."""
    hasher = TestPBKDF2PasswordHasher()
    return hasher.encode(password, hasher.salt(), iterations=OLD_ITERATIONS)


def iterations_of(encoded: str) -> int:
    """Return the iteration count stored in a pbkdf2 hash."""
    return int(encoded.split("$")[1])


class CheapArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's stock Argon2 with cheap costs, 8 lanes: only class attributes change."""

    time_cost = 1
    memory_cost = 256
    parallelism = 8


class OwnEncodeArgon2PasswordHasher(CheapArgon2PasswordHasher):
    """An Argon2 hasher with its own ``encode``: loopsafe must call it, not compute it."""

    calls = 0

    def encode(self, password: str, salt: str) -> str:
        """Count the call, then encode as Django does."""
        type(self).calls += 1
        return super().encode(password, salt)


class CountingPBKDF2PasswordHasher(TestPBKDF2PasswordHasher):
    """`TestPBKDF2PasswordHasher` under its own name that counts every hash it computes.

    ``verify`` (a password check) and ``encode`` (a new hash, the dummy hash
    for an unknown user included) each count one, on whichever thread runs them.
    """

    algorithm = "pbkdf2_sha256_counted"
    hashes = 0
    _lock = threading.Lock()

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        """Count one hash, then encode as Django does."""
        with self._lock:
            type(self).hashes += 1
        return super().encode(password, salt, iterations)


class PriorityRecordingPBKDF2PasswordHasher(TestPBKDF2PasswordHasher):
    """`TestPBKDF2PasswordHasher` that records the login priority each hash ran for.

    The pool runs the hash in a copy of the request's context, so
    ``loopsafe.django._client.current_priority()`` there is the login's.
    """

    algorithm = "pbkdf2_sha256_priority"
    seen: list[int] = []  # noqa: RUF012 - a class-wide record is the point

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        """Record the current priority, then encode as Django does."""
        from loopsafe.django._client import current_priority

        type(self).seen.append(current_priority())
        return super().encode(password, salt, iterations)


class MemoryArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's stock Argon2 at 4 MiB and one lane: a hash whose memory the pool must count."""

    time_cost = 4
    memory_cost = 4096
    parallelism = 1
