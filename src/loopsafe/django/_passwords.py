"""Django's password functions, run on the loopsafe pool.

Django decides what is correct: every function here calls Django's own
``verify_password`` and ``make_password`` (so ``PASSWORD_HASHERS``, custom
hashers and test mocks all apply), looked up on ``django.contrib.auth.hashers``
at call time. loopsafe decides where and when they run: as one call on
`loopsafe.default_pool()`, never on the event loop, with admission control
(`loopsafe.Overloaded`) in front.

Importing this module needs Django installed but not configured: nothing here
touches settings or models until a function is called.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.contrib.auth import hashers
from django.utils.crypto import get_random_string
from django.utils.version import get_complete_version
from django.views.decorators.debug import sensitive_variables

from loopsafe._calls import bind
from loopsafe._default import default_pool
from loopsafe._password_call import run_password_call
from loopsafe.django import _argon2, _kdf
from loopsafe.django._route import hasher_memory, route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from loopsafe._fair import Key

#: The installed Django's version tuple, e.g. (5, 2, 19, 'final', 0): one reading for the package.
DJANGO_VERSION = get_complete_version()

__all__ = [
    "SENSITIVE",
    "acheck_password",
    "acheck_user_password",
    "amake_password",
    "arun_unknown_user_hasher",
    "aset_password",
    "averify_password",
    "hasher_memory",
    "hide_passwords",
]

F = TypeVar("F", bound="Callable[..., Any]")
T = TypeVar("T")

#: Local variable names that hold a raw password in loopsafe's and Django's frames.
SENSITIVE = ("password", "raw_password", "credentials")


def hide_passwords(func: F) -> F:
    """Mark ``func`` with Django's ``sensitive_variables`` for the names in `SENSITIVE`.

    Django's error reports (the DEBUG 500 page, the admin e-mails) then show
    those variables as stars, in ``func``'s frame and, for a synchronous
    function, in every frame it calls: the hasher frames on the pool's worker
    thread included. Coroutine functions are marked on Django 5.0+ only (Django
    4.2's decorator would turn them into plain functions).
    """
    if inspect.iscoroutinefunction(func) and DJANGO_VERSION < (5, 0):
        return func
    return sensitive_variables(*SENSITIVE)(func)


class PasswordHolder(Protocol):
    """What the user-level functions need of a user: Django's ``AbstractBaseUser`` fields."""

    password: str
    _password: str | None

    def asave(self, *, update_fields: list[str]) -> Awaitable[None]:
        """Save the given fields (Django's ``Model.asave``)."""


# Django's own functions, to tell them from test mocks (which must apply).
_DJANGO_VERIFY_PASSWORD = getattr(hashers, "verify_password", None)
_DJANGO_MAKE_PASSWORD = hashers.make_password


def _computed_here(hasher: object) -> bool:
    """Whether loopsafe computes this Django hasher's work itself (`_argon2`, `_kdf`)."""
    return _argon2.is_stock(hasher) or _kdf.is_stock(hasher)


def _stock_installed() -> bool:
    """Whether a hasher in ``PASSWORD_HASHERS`` is one `_computed_here`."""
    return any(_computed_here(hasher) for hasher in hashers.get_hashers())


@hide_passwords
def _verify(password: str | None, encoded: str | None, preferred: Any) -> tuple[bool, bool]:
    """Django's ``verify_password``, with a port for Django 4.2, which has none.

    The port also runs when a hasher is Django's stock Argon2, PBKDF2 or
    scrypt (and ``verify_password`` is Django's, not a mock): it is Django's
    function step by step, with that hasher's work done by `_argon2` (same
    answer, no lane threads) or `_kdf` (same answer, the faster KDF backend).
    """
    verify = getattr(hashers, "verify_password", None)
    if verify is not None and (verify is not _DJANGO_VERIFY_PASSWORD or not _stock_installed()):
        result: tuple[bool, bool] = verify(password, encoded, preferred=preferred)
        return result
    return _verify_password_4_2(password, encoded, preferred)


def _hasher_verify(hasher: Any, password: Any, encoded: Any) -> bool:
    """``hasher.verify``, through `_argon2` or `_kdf` for Django's stock hashers."""
    answer = _argon2.verify(hasher, password, encoded)
    if answer is None:
        answer = _kdf.verify(hasher, password, encoded)
    if answer is None:
        answer = bool(hasher.verify(password, encoded))
    return answer


def _harden_runtime(hasher: Any, password: Any, encoded: Any) -> None:
    """``hasher.harden_runtime``, through `_kdf` for Django's stock PBKDF2 (as its verify)."""
    if not _kdf.harden_runtime(hasher, password, encoded):
        hasher.harden_runtime(password, encoded)


def _stock_encode(hasher: Any, password: Any, salt: str) -> str | None:
    """``hasher.encode`` through `_argon2` or `_kdf`, or None where Django's code must run."""
    if _argon2.is_stock(hasher):
        return _argon2.encode(hasher, password, salt)
    return _kdf.encode(hasher, password, salt)


@hide_passwords
def _make(password: Any, salt: str | None = None, hasher: Any = "default") -> str:
    """Django's ``make_password``, through `_argon2` or `_kdf` for Django's stock hashers."""
    if (
        hashers.make_password is _DJANGO_MAKE_PASSWORD
        and isinstance(password, (str, bytes))
        # A hasher given as an object is used as it is, whatever else is configured.
        and (not isinstance(hasher, str) or _stock_installed())
    ):
        chosen = hashers.get_hasher(hasher)
        if _computed_here(chosen):
            salt = salt or chosen.salt()
            encoded = _stock_encode(chosen, password, salt)
            if encoded is None:
                encoded = chosen.encode(password, salt)  # type: ignore[arg-type] # Django takes bytes too
            return str(encoded)
    # Called with what the caller gave, as Django's own code calls it.
    if salt is None and hasher == "default":
        made: str = hashers.make_password(password)
    else:
        made = hashers.make_password(password, salt, hasher)
    return made


def _verify_password_4_2(
    password: Any,
    encoded: Any,
    preferred: Any,
) -> tuple[bool, bool]:
    """Django 5.0's ``verify_password``, built from the pieces Django 4.2 already has.

    Django 4.2's ``check_password`` does the same steps inline (and then calls
    the setter); this returns ``(is_correct, must_update)`` instead, so the
    setter can run on the event loop after the hashing is done. Django 5.0 to
    6.1's ``verify_password`` is this function, line for line; here the
    stock Argon2 hasher's work goes through `_argon2`, and the stock PBKDF2
    and scrypt hashers' (hardening included) through `_kdf`.
    """
    fake_runtime = password is None or not hashers.is_password_usable(encoded)
    preferred_hasher = hashers.get_hasher(preferred)
    try:
        hasher = hashers.identify_hasher(encoded)
    except ValueError:
        # Gibberish, or a hasher that is no longer installed.
        fake_runtime = True
    if fake_runtime:
        # Run the default hasher once so these cases take as long as a real
        # check (Django ticket #20760).
        # Looked up on Django's module at call time, as Django's own code does,
        # so a test's mock of either applies here too.
        random_string = getattr(hashers, "get_random_string", get_random_string)
        _make(random_string(hashers.UNUSABLE_PASSWORD_SUFFIX_LENGTH))
        return False, False
    hasher_changed = hasher.algorithm != preferred_hasher.algorithm
    must_update = hasher_changed or preferred_hasher.must_update(encoded)
    is_correct = _hasher_verify(hasher, password, encoded)
    if not is_correct and not hasher_changed and must_update:
        _harden_runtime(hasher, password, encoded)
    return is_correct, must_update


@hide_passwords
def _verify_and_rehash(password: str | None, encoded: str | None) -> tuple[bool, str | None]:
    """Verify, and when the password is right but its hash outdated, make the new hash.

    Both steps in one worker call: the event loop waits once, and then only
    has to save.
    """
    is_correct, must_update = _verify(password, encoded, "default")
    if is_correct and must_update and password is not None:
        new_encoded = _make(password)
        return True, new_encoded
    return is_correct, None


@hide_passwords
def _make_password(password: str | bytes, salt: str | None, hasher: Any) -> str:
    """Django's ``make_password`` (looked up now, so mocks apply), in a marked frame."""
    return _make(password, salt, hasher)


@hide_passwords
def _set_password(user: Any, password: str) -> None:
    """``user.set_password(password)`` in a marked frame.

    Django's own ``AbstractBaseUser.set_password`` is run step by step, so a
    stock Argon2, PBKDF2 or scrypt hash is made by `_argon2` or `_kdf`; an
    overridden one is called.
    """
    from django.contrib.auth.base_user import AbstractBaseUser

    if type(user).set_password is not AbstractBaseUser.set_password:
        user.set_password(password)
        return
    user.password = _make(password)
    user._password = password  # noqa: SLF001 - Django's own field for password_changed


@hide_passwords
async def averify_password(
    password: str | None,
    encoded: str | None,
    preferred: Any = "default",
    *,
    key: Key = None,
) -> tuple[bool, bool]:
    """Django's ``verify_password``, run on the loopsafe pool.

    Args:
        password: The raw password (None verifies as False, after one dummy hash).
        encoded: The stored hash.
        preferred: The preferred hasher or its algorithm name; a hash made by
            another one, or with other parameters, must be updated.
        key: The client this is for (see `loopsafe.HashPool.run`); None
            takes the current request's key (set by ``OverloadMiddleware``
            and loopsafe's ``ModelBackend`` from ``LOOPSAFE["CLIENT_KEY"]``).

    Returns:
        ``(is_correct, must_update)``, as Django's ``verify_password``.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing ran.
    """
    return await run_password_call(
        default_pool(), route(key), bind(_verify, password, encoded, preferred)
    )


@hide_passwords
async def acheck_password(
    password: str | None,
    encoded: str | None,
    setter: Callable[[str | None], Awaitable[object]] | None = None,
    preferred: Any = "default",
    *,
    key: Key = None,
) -> bool:
    """Django's ``acheck_password``, with the verification on the loopsafe pool.

    As in Django, ``setter`` is awaited with the raw password when it was right
    and its hash must be updated. A setter that hashes should do it with
    `amake_password`; the user-level paths of loopsafe (``AsyncPasswordMixin``,
    the backend and ``PATCH_AUTH``) go further and make the new hash inside
    the same pool call as the verification.

    Args:
        password: The raw password.
        encoded: The stored hash.
        setter: Optional async callable that stores an updated hash.
        preferred: The preferred hasher or its algorithm name.
        key: The client this is for; None: the current request's key.

    Returns:
        Whether the password is right.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing ran.
    """
    is_correct, must_update = await averify_password(password, encoded, preferred, key=key)
    if setter is not None and is_correct and must_update:
        await setter(password)
    return is_correct


@hide_passwords
async def amake_password(
    password: str | bytes | None,
    salt: str | None = None,
    hasher: Any = "default",
    *,
    key: Key = None,
) -> str:
    """Django's ``make_password``, run on the loopsafe pool.

    ``None`` makes an unusable password at once (no hashing, no pool), and a
    password of another type raises Django's `TypeError` before anything is
    queued.

    Args:
        password: The raw password, or None for an unusable one.
        salt: Optional salt; the hasher makes one otherwise.
        hasher: The hasher or its algorithm name.
        key: The client this is for; None: the current request's key.

    Returns:
        The encoded hash.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing ran.
        TypeError: ``password`` is not str, bytes or None.
    """
    if password is None:
        unusable: str = hashers.make_password(None)
        return unusable
    if not isinstance(password, (bytes, str)):
        raise TypeError(f"Password must be a string or bytes, got {type(password).__qualname__}.")
    return await run_password_call(
        default_pool(), route(key), bind(_make_password, password, salt, hasher)
    )


@hide_passwords
async def aset_password(user: PasswordHolder, raw_password: str | None, *, key: Key = None) -> None:
    """``user.set_password(raw_password)``, with the hashing on the loopsafe pool.

    Like Django's ``AbstractBaseUser.set_password``, this sets ``password`` and
    remembers the raw password for ``password_changed`` after the next save;
    it does not save. The user is changed only once the hash is made, on the
    caller's side: a cancelled call leaves it untouched.

    Args:
        user: A Django user (any ``AbstractBaseUser``).
        raw_password: The new password, or None for an unusable one.
        key: The client this is for; None: the current request's key.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing changed.
    """
    encoded = await amake_password(raw_password, key=key)
    user.password = encoded
    user._password = raw_password  # noqa: SLF001 - Django's own field for password_changed


@hide_passwords
async def acheck_user_password(
    user: PasswordHolder, raw_password: str | None, *, key: Key = None
) -> bool:
    """``user.acheck_password(raw_password)`` in one pool call, saving an upgraded hash.

    The verification and, when the password is right but its hash outdated,
    the new hash are made in one worker call; only the save runs on the event
    loop. An upgrade is not a password change (``password_changed`` is not
    sent), exactly as in Django.

    Args:
        user: A Django user.
        raw_password: The password to check.
        key: The client this is for; None: the current request's key.

    Returns:
        Whether the password is right.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing ran.
    """
    job = bind(_verify_and_rehash, raw_password, user.password)
    is_correct, new_encoded = await run_password_call(default_pool(), route(key), job)
    if new_encoded is not None:
        user.password = new_encoded
        # Password hash upgrades are not password changes.
        user._password = None  # noqa: SLF001 - Django's own field for password_changed
        await user.asave(update_fields=["password"])
    return is_correct


@hide_passwords
async def arun_unknown_user_hasher(password: str, *, key: Key = None) -> None:
    """Hash once for a user that does not exist, on the pool (Django ticket #20760).

    Django runs ``UserModel().set_password(password)`` so that a login for an
    unknown user takes as long as one for a known user. This does the same,
    model method included, on a throwaway instance in a worker.

    Raises:
        loopsafe.Overloaded: The pool refused the call.
    """
    from django.contrib.auth import get_user_model

    throwaway = get_user_model()()
    await run_password_call(default_pool(), route(key), bind(_set_password, throwaway, password))
