"""Parameter profiles: each Django version's default costs, and a cheap one for tests.

A profile builds the hasher list Django's ``PASSWORD_HASHERS`` default has
(PBKDF2-SHA256 first, then PBKDF2-SHA1, Argon2, bcrypt-SHA256 and scrypt),
at that version's parameters. Benchmarks use the real ones; test suites use
`CHEAP`, like argon2-cffi's ``profiles.CHEAPEST``.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopsafe._hashers import (
    Argon2Hasher,
    BCryptSHA256Hasher,
    Hasher,
    PBKDF2Hasher,
    PBKDF2SHA1Hasher,
    ScryptHasher,
)

__all__ = ["CHEAP", "DEFAULT", "DJANGO_4_2", "DJANGO_5_2", "DJANGO_6_1", "Profile"]


@dataclass(frozen=True)
class Profile:
    """The cost parameters of every algorithm, as one Django version sets them.

    Attributes:
        name: A short label used in reports.
        pbkdf2_iterations: PBKDF2 iterations (both SHA-256 and SHA-1).
        argon2_time_cost: Argon2 passes.
        argon2_memory_cost: Argon2 memory in KiB.
        argon2_parallelism: Argon2 lanes.
        bcrypt_rounds: bcrypt log2 cost.
        scrypt_work_factor: scrypt N.
        scrypt_block_size: scrypt r.
        scrypt_parallelism: scrypt p.
    """

    name: str
    pbkdf2_iterations: int
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 102_400
    argon2_parallelism: int = 8
    bcrypt_rounds: int = 12
    scrypt_work_factor: int = 2**14
    scrypt_block_size: int = 8
    scrypt_parallelism: int = 5

    def hashers(self) -> list[Hasher]:
        """Return the hashers in Django's default ``PASSWORD_HASHERS`` order, preferred first."""
        return [
            PBKDF2Hasher(self.pbkdf2_iterations),
            PBKDF2SHA1Hasher(self.pbkdf2_iterations),
            Argon2Hasher(self.argon2_time_cost, self.argon2_memory_cost, self.argon2_parallelism),
            BCryptSHA256Hasher(self.bcrypt_rounds),
            ScryptHasher(self.scrypt_work_factor, self.scrypt_block_size, self.scrypt_parallelism),
        ]

    def hasher(self, algorithm: str) -> Hasher:
        """Return this profile's hasher for ``algorithm`` (e.g. ``"argon2"``).

        Raises:
            KeyError: If the profile has no such algorithm.
        """
        for hasher in self.hashers():
            if hasher.algorithm == algorithm:
                return hasher
        raise KeyError(algorithm)


#: Django 4.2 LTS: PBKDF2 600,000 iterations.
DJANGO_4_2 = Profile("django-4.2", pbkdf2_iterations=600_000)
#: Django 5.2 LTS: PBKDF2 1,000,000 iterations.
DJANGO_5_2 = Profile("django-5.2", pbkdf2_iterations=1_000_000)
#: Django 6.1: PBKDF2 1,500,000 iterations.
DJANGO_6_1 = Profile("django-6.1", pbkdf2_iterations=1_500_000)
#: For test suites: every algorithm at (near) its minimum cost.
CHEAP = Profile(
    "cheap",
    pbkdf2_iterations=1_000,
    argon2_time_cost=1,
    argon2_memory_cost=8,
    argon2_parallelism=1,
    bcrypt_rounds=4,
    scrypt_work_factor=16,
    scrypt_block_size=1,
    scrypt_parallelism=1,
)
#: What loopsafe uses when nothing else is said: the newest Django's defaults.
DEFAULT = DJANGO_6_1
