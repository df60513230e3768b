"""Parameter profiles: each Django version's default costs, and a cheap one for tests.

A profile builds the hasher list of Django's default ``PASSWORD_HASHERS``, in
its order (PBKDF2-SHA256 first and so preferred, then PBKDF2-SHA1, Argon2,
bcrypt-SHA256 and scrypt), at that version's parameters. The figures come from
``django/contrib/auth/hashers.py`` of Django 4.2.30, 5.2.19 and 6.1.3 and their
release notes:

============  =========  ================  ======  ================
profile       PBKDF2     Argon2 (t, m, p)  bcrypt  scrypt (N, r, p)
============  =========  ================  ======  ================
`DJANGO_4_2`  600000     2, 102400, 8      12      2**14, 8, **1**
`DJANGO_5_2`  1000000    2, 102400, 8      12      2**14, 8, 5
`DJANGO_6_1`  1500000    2, 102400, 8      12      2**14, 8, 5
============  =========  ================  ======  ================

(Django 5.1 raised scrypt's parallelism from 1 to 5.) Benchmarks use the real
profiles; test suites use `CHEAP`, like argon2-cffi's ``profiles.CHEAPEST``.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopsafe.hashers import (
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
    """The cost parameters of every algorithm in Django's default hasher list.

    The defaults are Django 6.1's. Creating a profile checks every parameter
    (the hashers' constructors raise `TypeError`/`ValueError`), without
    importing argon2-cffi or bcrypt.

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
    pbkdf2_iterations: int = 1_500_000
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 102_400
    argon2_parallelism: int = 8
    bcrypt_rounds: int = 12
    scrypt_work_factor: int = 2**14
    scrypt_block_size: int = 8
    scrypt_parallelism: int = 5

    def __post_init__(self) -> None:
        """Check every parameter by building the hashers once."""
        self.hashers()

    def hashers(self) -> list[Hasher]:
        """Return new hashers in Django's default ``PASSWORD_HASHERS`` order, preferred first."""
        return [
            PBKDF2Hasher(iterations=self.pbkdf2_iterations),
            PBKDF2SHA1Hasher(iterations=self.pbkdf2_iterations),
            Argon2Hasher(
                time_cost=self.argon2_time_cost,
                memory_cost=self.argon2_memory_cost,
                parallelism=self.argon2_parallelism,
            ),
            BCryptSHA256Hasher(rounds=self.bcrypt_rounds),
            ScryptHasher(
                work_factor=self.scrypt_work_factor,
                block_size=self.scrypt_block_size,
                parallelism=self.scrypt_parallelism,
            ),
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


#: Django 4.2 LTS: PBKDF2 600,000 iterations, scrypt parallelism 1.
DJANGO_4_2 = Profile("django-4.2", pbkdf2_iterations=600_000, scrypt_parallelism=1)
#: Django 5.2 LTS: PBKDF2 1,000,000 iterations.
DJANGO_5_2 = Profile("django-5.2", pbkdf2_iterations=1_000_000)
#: Django 6.1: PBKDF2 1,500,000 iterations.
DJANGO_6_1 = Profile("django-6.1", pbkdf2_iterations=1_500_000)
#: For test suites: every algorithm at (near) its minimum cost. Argon2 is
#: argon2-cffi's ``CHEAPEST`` (t=1, 8 KiB, 1 lane), bcrypt its minimum cost 4,
#: scrypt the smallest N, r, p that make sense; PBKDF2 keeps 1,000 iterations
#: so that a must_update test against other counts still has room below.
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
