"""Logins per core-second, side by side: loopsafe, stock Django, pwdlib, passlib and the floor.

For each hasher of a ``loopsafe bench`` run, one login (a verification) is
timed single-threaded with `cpu_seconds` (median ``time.process_time()`` after
a warm-up, every thread of the process counted) in each library that computes
it, and reported as ``1 / CPU seconds``: how many logins one core serves.

``loopsafe``
    `loopsafe.PasswordHash.verify` (PBKDF2 and scrypt on the KDF backend
    `loopsafe.hashers.kdf_backends` chose).
``django``
    The installed Django's own ``acheck_password`` with its stock hasher for
    the algorithm (``PBKDF2PasswordHasher``...), awaited on one event loop:
    Django 6.x runs it in asgiref's executor, 5.x on the loop; the CPU of
    either thread counts. Same stored hashes as loopsafe.
``pwdlib``
    pwdlib's ``Argon2Hasher`` and ``BcryptHasher`` (plain bcrypt; Django's
    ``bcrypt_sha256`` adds one SHA-256) at the same costs, on their own hashes.
``passlib``
    passlib's ``django_pbkdf2_sha256``/``_sha1`` (which read Django's strings),
    ``argon2``, ``django_bcrypt_sha256`` and ``scrypt`` at the same costs,
    where passlib 1.7.4 still works with today's libraries (its bcrypt backend
    fails with bcrypt 4.1 and later; the reason is reported).
``floor``
    A lower bound measured on this machine, never an implementation:
    PBKDF2: iterations x 2 compression-function calls (HMAC's inner and outer
    hash of one block each), the compression cost timed by hashing 4 MiB with
    hashlib and with cryptography's bundled OpenSSL (the faster counts);
    scrypt and Argon2: the bytes they must move through memory (scrypt writes
    and reads its 128 r N byte array once per lane, Argon2 reads two 1 KiB
    blocks and writes one per block and pass) at the measured copy bandwidth:
    a bound far below their compute; bcrypt: none (its 4 KiB state stays in
    cache and its Blowfish rounds cannot be timed apart from Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from loopsafe.cli._measure import cpu_seconds
from loopsafe.exceptions import HasherNotAvailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from loopsafe._api import PasswordHash
    from loopsafe.hashers import Hasher

__all__ = [
    "LIBRARIES",
    "PerCoreRow",
    "django_label",
    "django_login",
    "measure_per_core",
    "stock_django",
]

#: The columns, in order.
LIBRARIES: Final = ("loopsafe", "django", "pwdlib", "passlib", "floor")
#: Django's own hasher class per algorithm.
_DJANGO_HASHERS: Final = {
    "pbkdf2_sha256": "PBKDF2PasswordHasher",
    "pbkdf2_sha1": "PBKDF2SHA1PasswordHasher",
    "argon2": "Argon2PasswordHasher",
    "bcrypt_sha256": "BCryptSHA256PasswordHasher",
    "scrypt": "ScryptPasswordHasher",
}
_PASSWORD: Final = "per-core-benchmark"  # noqa: S105 - a benchmark's throwaway password
_BUFFER: Final = 4 * 2**20


@dataclass(frozen=True)
class PerCoreRow:
    """Logins per core-second of one hasher in each library (None: not measured, and why).

    Attributes:
        algorithm: Django's algorithm name.
        logins: Library -> logins per core-second (``1 / CPU seconds per login``).
        notes: Library -> why there is no figure, or what the figure is.
    """

    algorithm: str
    logins: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready values."""
        return {
            "algorithm": self.algorithm,
            "logins_per_core_second": {
                name: None if value is None else round(value, 3)
                for name, value in self.logins.items()
            },
            "notes": dict(self.notes),
        }


def django_label() -> str:
    """``Django 6.1.3`` (the installed version), or ``Django (not installed)``."""
    try:
        import django
    except ImportError:
        return "Django (not installed)"
    return f"Django {django.get_version()}"


def _django_configured() -> None:
    """Configure Django with its defaults if nothing configured it (the command line)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
            USE_TZ=True,
        )
        django.setup()


@contextlib.contextmanager
def stock_django(algorithm: str) -> Iterator[Callable[..., Any]]:
    """Django's own ``acheck_password``, with ``PASSWORD_HASHERS`` set to its stock hasher.

    Raises:
        ImportError: If Django is not installed.
    """
    _django_configured()
    from django.contrib.auth import hashers
    from django.test import override_settings

    path = f"django.contrib.auth.hashers.{_DJANGO_HASHERS[algorithm]}"
    with override_settings(PASSWORD_HASHERS=[path]):
        yield hashers.acheck_password


def django_login(*, rehash: bool) -> Callable[[str, str], Awaitable[tuple[bool, bool]]]:
    """Stock Django's ``acheck_password``; with ``rehash``, a setter like ``AbstractBaseUser``'s.

    Call it, and the logins, inside `stock_django` for the algorithm.
    """
    from django.contrib.auth import hashers

    async def django_login(password: str, encoded: str) -> tuple[bool, bool]:
        rehashed = []

        async def setter(raw: str) -> None:
            # AbstractBaseUser.acheck_password's setter: set_password on the loop.
            rehashed.append(hashers.make_password(raw))

        ok = await hashers.acheck_password(password, encoded, setter if rehash else None)
        return bool(ok), bool(rehashed)

    return django_login


def _once_per_login(
    verify: Callable[[str, str], object], encoded: str, password: str = _PASSWORD
) -> Callable[[], object]:
    def login() -> object:
        if not verify(password, encoded):
            raise RuntimeError("a benchmark login did not verify")
        return True

    return login


def _django(algorithm: str, password: str, encoded: str, repeats: int) -> float:
    loop = asyncio.new_event_loop()
    try:
        with stock_django(algorithm) as acheck_password:

            def verify(password: str, stored: str) -> bool:
                return bool(loop.run_until_complete(acheck_password(password, stored)))

            return cpu_seconds(_once_per_login(verify, encoded, password), repeats=repeats)
    finally:
        loop.close()


def _pwdlib(hasher: Hasher, repeats: int) -> float:
    params = hasher.params
    if hasher.algorithm == "argon2":
        from pwdlib.hashers.argon2 import Argon2Hasher

        pwd: Any = Argon2Hasher(
            time_cost=params["time_cost"],
            memory_cost=params["memory_cost"],
            parallelism=params["parallelism"],
        )
    elif hasher.algorithm == "bcrypt_sha256":
        from pwdlib.hashers.bcrypt import BcryptHasher

        pwd = BcryptHasher(rounds=params["rounds"])
    else:
        raise LookupError("pwdlib has no such hasher")
    return cpu_seconds(_once_per_login(pwd.verify, pwd.hash(_PASSWORD)), repeats=repeats)


def _passlib(hasher: Hasher, password: str, encoded: str, repeats: int) -> float:
    # passlib 1.7.4 imports the crypt module (deprecated since Python 3.11) and
    # reads argon2.__version__ (deprecated by argon2-cffi): its warnings, not ours.
    # Its bcrypt backend also logs a traceback when it cannot read bcrypt 4.1+'s version.
    passlib_log = logging.getLogger("passlib")
    level = passlib_log.level
    passlib_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return _passlib_seconds(hasher, password, encoded, repeats)
    finally:
        passlib_log.setLevel(level)


def _passlib_seconds(hasher: Hasher, password: str, encoded: str, repeats: int) -> float:
    from passlib import hash as passlib_hash  # type: ignore[import-untyped] # no stubs

    params, algorithm = hasher.params, hasher.algorithm
    if algorithm in {"pbkdf2_sha256", "pbkdf2_sha1"}:
        handler: Any = getattr(passlib_hash, f"django_{algorithm}")
        login = _once_per_login(handler.verify, encoded, password)
        return cpu_seconds(login, repeats=repeats)
    if algorithm == "argon2":
        handler = passlib_hash.argon2.using(
            rounds=params["time_cost"],
            memory_cost=params["memory_cost"],
            parallelism=params["parallelism"],
        )
    elif algorithm == "bcrypt_sha256":
        handler = passlib_hash.django_bcrypt_sha256.using(rounds=params["rounds"])
    else:
        handler = passlib_hash.scrypt.using(
            rounds=int(math.log2(params["work_factor"])),
            block_size=params["block_size"],
            parallelism=params["parallelism"],
        )
    stored = handler.hash(_PASSWORD)
    return cpu_seconds(_once_per_login(handler.verify, stored), repeats=repeats)


def _compression_seconds(digest: str) -> float:
    """CPU seconds of one compression-function call of ``digest`` (64-byte block), fastest here."""
    data = bytes(_BUFFER)
    update_functions: list[Callable[[], object]] = [lambda: hashlib.new(digest, data)]
    with contextlib.suppress(ImportError):
        from cryptography.hazmat.primitives import hashes

        algorithm = hashes.SHA256() if digest == "sha256" else hashes.SHA1()  # noqa: S303 - Django's pbkdf2_sha1

        def bundled() -> object:
            context = hashes.Hash(algorithm)
            context.update(data)
            return context.finalize()

        update_functions.append(bundled)
    return min(cpu_seconds(update, repeats=5) for update in update_functions) / (_BUFFER // 64)


def _copy_seconds_per_byte() -> float:
    """CPU seconds to copy one byte of a buffer larger than any cache (read once, write once)."""
    source = bytearray(64 * 2**20)
    target = bytearray(len(source))

    def copy() -> None:
        target[:] = source

    return cpu_seconds(copy, repeats=3) / len(source)


def _floor(hasher: Hasher) -> tuple[float | None, str]:
    params = hasher.params
    if hasher.algorithm in {"pbkdf2_sha256", "pbkdf2_sha1"}:
        digest = "sha256" if hasher.algorithm == "pbkdf2_sha256" else "sha1"
        compression = _compression_seconds(digest)
        return (
            2 * params["iterations"] * compression,
            f"iterations x 2 {digest} compressions of {compression * 1e9:.0f} ns",
        )
    if hasher.algorithm == "scrypt":
        per_byte = _copy_seconds_per_byte()
        moved = 128 * params["block_size"] * params["work_factor"] * params["parallelism"]
        return moved * per_byte, (
            f"memory traffic only: {moved / 2**20:.0f} MiB written and read at "
            f"{1 / per_byte / 2**30:.1f} GiB/s copy"
        )
    if hasher.algorithm == "argon2":
        per_byte = _copy_seconds_per_byte()
        blocks = params["memory_cost"] * params["time_cost"]
        # Each 1 KiB block: two read, one written; a copy reads and writes once.
        moved = blocks * 1024 * 3 // 2
        return moved * per_byte, (
            f"memory traffic only: {blocks * 3 / 1024:.0f} MiB moved at "
            f"{1 / per_byte / 2**30:.1f} GiB/s copy"
        )
    return None, "no floor measured: bcrypt's state stays in cache; its rounds are pure compute"


def _attempt(row: PerCoreRow, name: str, measure: Callable[[], float]) -> None:
    try:
        seconds = measure()
    except LookupError as exc:
        row.logins[name] = None
        row.notes[name] = str(exc)
    except (ImportError, HasherNotAvailable) as exc:
        row.logins[name] = None
        row.notes[name] = f"not installed ({exc.name or exc})"
    except (ValueError, AttributeError, RuntimeError) as exc:  # passlib with today's bcrypt
        row.logins[name] = None
        row.notes[name] = f"fails here: {type(exc).__name__}: {str(exc)[:80]}"
    else:
        row.logins[name] = 1 / seconds if seconds > 0 else math.inf


def measure_per_core(
    facade: PasswordHash, encoded: str, password: str, *, repeats: int = 3
) -> PerCoreRow:
    """Logins per core-second of ``facade``'s preferred hasher in every library of `LIBRARIES`.

    ``encoded`` is a stored hash of ``password`` made by ``facade``'s hasher:
    loopsafe, Django and passlib's Django handlers verify exactly that string.
    """
    hasher = facade.preferred
    row = PerCoreRow(hasher.algorithm)

    def ours() -> float:
        return cpu_seconds(_once_per_login(facade.verify, encoded, password), repeats=repeats)

    def floor() -> float:
        seconds, note = _floor(hasher)
        row.notes["floor"] = note
        if seconds is None:
            raise LookupError(note)
        return seconds

    _attempt(row, "loopsafe", ours)
    _attempt(row, "django", lambda: _django(hasher.algorithm, password, encoded, repeats))
    _attempt(row, "pwdlib", lambda: _pwdlib(hasher, repeats))
    _attempt(row, "passlib", lambda: _passlib(hasher, password, encoded, repeats))
    _attempt(row, "floor", floor)
    return row
