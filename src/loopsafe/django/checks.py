"""loopsafe's system checks (``manage.py check --tag loopsafe``).

=============  ==============================================================
id             what it reports
=============  ==============================================================
loopsafe.E001  an invalid value in ``settings.LOOPSAFE`` (one error per key:
               whatever `loopsafe.PoolSettings` refuses, inf and nan included)
loopsafe.W001  ``aauthenticate()`` hashes on the event loop (or, on Django 4.2,
               there is no async authentication), given AUTHENTICATION_BACKENDS
loopsafe.W002  ``AUTH_USER_MODEL``'s ``acheck_password()`` hashes on the event
               loop (Django 5.x) or rehashes there (Django 6.x)
loopsafe.W003  plain ``BCryptPasswordHasher`` with bcrypt >= 5, which raises
               ValueError (HTTP 500) for passwords over 72 bytes
loopsafe.W004  Argon2/scrypt memory per hash x ``MAX_WORKERS`` above a quarter
               of the memory this process may use
loopsafe.W005  unknown keys in ``settings.LOOPSAFE`` (typos)
loopsafe.W006  ``OverloadMiddleware`` missing: an overloaded login answers 500
loopsafe.W007  an authentication backend with only a synchronous ``authenticate``
               (django-axes'), which Django's ``aauthenticate()`` would skip
               or crash on
=============  ==============================================================

Invalid *values* in ``LOOPSAFE`` also raise ``ImproperlyConfigured`` when
Django starts (naming every bad key), because ASGI servers run no checks.
"""

from __future__ import annotations

import contextlib
import os
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Final

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string
from django.utils.version import get_version

from loopsafe.django import conf
from loopsafe.django._passwords import DJANGO_VERSION, hasher_memory

if TYPE_CHECKING:
    from collections.abc import Callable

    from django.core.checks import CheckMessage


__all__ = [
    "ALL_CHECKS",
    "MEMORY_SHARE",
    "TAG",
    "check_async_auth_backends",
    "check_bcrypt",
    "check_hasher_memory",
    "check_middleware",
    "check_settings_keys",
    "check_settings_values",
    "check_sync_only_backends",
    "check_user_model",
    "hasher_memory",
    "process_memory_limit",
]

#: The tag all of loopsafe's checks carry.
TAG: Final = "loopsafe"
#: Share of the process's memory that hashes in flight may take before W004.
MEMORY_SHARE: Final = 0.25

_BACKEND = "loopsafe.django.backends.ModelBackend"
_MIDDLEWARE = "loopsafe.django.middleware.OverloadMiddleware"


def _hasher_classes() -> list[tuple[str, object]]:
    """Return ``(path, class)`` of each importable hasher in PASSWORD_HASHERS."""
    found = []
    for path in settings.PASSWORD_HASHERS:
        try:
            found.append((path, import_string(path)))
        except ImportError:  # noqa: PERF203 - a handful of paths; Django reports bad ones
            continue
    return found


def _patch_auth_on() -> bool:
    try:
        return conf.get_settings().patch_auth
    except Exception:  # noqa: BLE001 - an invalid LOOPSAFE is loopsafe.E001's to report
        return False


def check_async_auth_backends(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W001: configured ``ModelBackend``s whose ``aauthenticate`` hashes on the event loop."""
    from django.contrib.auth.backends import ModelBackend as DjangoModelBackend

    from loopsafe.django.backends import ModelBackend

    has_async_auth = DJANGO_VERSION >= (5, 0)
    if has_async_auth and _patch_auth_on():
        return []
    blocking = []
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            backend = import_string(path)
        except ImportError:
            continue  # Django reports its own error for that
        if not isinstance(backend, type) or not issubclass(backend, DjangoModelBackend):
            continue  # a custom backend: loopsafe cannot tell
        if issubclass(backend, ModelBackend):
            continue
        stock = vars(DjangoModelBackend).get("aauthenticate")
        if has_async_auth and getattr(backend, "aauthenticate", None) is not stock:
            continue  # the subclass has its own aauthenticate
        blocking.append(path)
    if not blocking:
        return []
    if not has_async_auth:
        msg = (
            f"Django {get_version()} has no async authentication: an async view that "
            "calls sync_to_async(authenticate) hashes on asgiref's single thread-sensitive "
            f"thread, so every ORM call waits behind each login ({', '.join(blocking)})."
        )
        hint = (
            f"Use {_BACKEND!r} in AUTHENTICATION_BACKENDS and await "
            "loopsafe.django.aauthenticate() in async views."
        )
    else:
        what = (
            "rehashes upgraded passwords on the event loop and checks passwords without "
            "admission control"
            if DJANGO_VERSION >= (6, 0)
            else "hashes every password on the event loop, for unknown users too"
        )
        msg = (
            f"aauthenticate() with {', '.join(blocking)} {what}: "
            "each login stalls every other request of this process."
        )
        hint = (
            f"Use {_BACKEND!r} in AUTHENTICATION_BACKENDS instead, or set "
            "LOOPSAFE = {'PATCH_AUTH': True}."
        )
    return [checks.Warning(msg, hint=hint, id="loopsafe.W001")]


def check_user_model(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W002: the user model's ``acheck_password`` is Django's, which hashes on the loop."""
    if DJANGO_VERSION < (5, 0) or _patch_auth_on():
        return []
    from django.contrib.auth import get_user_model
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.core.exceptions import ImproperlyConfigured

    from loopsafe.django import _replaced

    try:
        user_model = get_user_model()
    except ImproperlyConfigured:
        return []  # Django reports a bad AUTH_USER_MODEL itself
    method = getattr(user_model, "acheck_password", None)
    if method is None or method is not _replaced.original(AbstractBaseUser, "acheck_password"):
        return []
    what = (
        "rehashes upgraded passwords on the event loop"
        if DJANGO_VERSION >= (6, 0)
        else "hashes on the event loop"
    )
    return [
        checks.Warning(
            f"{settings.AUTH_USER_MODEL}.acheck_password() is Django's, which {what}.",
            hint=(
                "Set LOOPSAFE = {'PATCH_AUTH': True}, or add "
                "loopsafe.django.mixins.AsyncPasswordMixin to a custom user model. "
                "Silence loopsafe.W002 if no code of yours awaits user.acheck_password()."
            ),
            obj=user_model,
            id="loopsafe.W002",
        )
    ]


def check_bcrypt(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W003: plain bcrypt (no SHA-256 pre-hash) with bcrypt >= 5."""
    try:
        bcrypt_version = metadata.version("bcrypt")
    except metadata.PackageNotFoundError:
        return []
    major = bcrypt_version.split(".", 1)[0]
    if not major.isdigit() or int(major) < 5:  # noqa: PLR2004 - bcrypt 5.0 changed this
        return []
    messages: list[CheckMessage] = []
    for path, hasher in _hasher_classes():
        if getattr(hasher, "algorithm", None) == "bcrypt" and getattr(hasher, "digest", 0) is None:
            messages.append(
                checks.Warning(
                    f"{path} with bcrypt {bcrypt_version}: bcrypt 5 raises ValueError for "
                    "passwords longer than 72 bytes, so such a login or password change "
                    "fails with an error (HTTP 500) instead of an answer.",
                    hint=(
                        "Put BCryptSHA256PasswordHasher (or Argon2/PBKDF2) first in "
                        "PASSWORD_HASHERS so new hashes avoid the limit, and reject "
                        "passwords over 72 bytes before checking legacy bcrypt hashes; "
                        "or pin bcrypt<5."
                    ),
                    obj=path,
                    id="loopsafe.W003",
                )
            )
    return messages


def process_memory_limit() -> int | None:
    """Return the memory this process may use: its cgroup limit or the physical memory."""
    limits: list[int] = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not POSIX
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return min(limits) if limits else None


def check_hasher_memory(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W004: memory of the hungriest hasher x MAX_WORKERS above MEMORY_SHARE of the limit."""
    try:
        workers = conf.get_settings().pool_settings[0]
    except Exception:  # noqa: BLE001 - an invalid LOOPSAFE is loopsafe.E001's to report
        return []
    needs = [(hasher_memory(hasher), path) for path, hasher in _hasher_classes()]
    limit = process_memory_limit()
    if not needs or not limit:
        return []
    per_hash, path = max(needs)
    total = per_hash * workers
    if total <= MEMORY_SHARE * limit:
        return []
    mib = 1024 * 1024
    return [
        checks.Warning(
            f"{workers} hashes at once with {path} may take {total / mib:.0f} MiB, "
            f"{total / limit:.0%} of the {limit / mib:.0f} MiB this process may use.",
            hint=(
                "Lower LOOPSAFE['MAX_WORKERS'], or the hasher's memory_cost/work_factor; "
                "loopsafe's admission control keeps further hashes queued, not in memory."
            ),
            id="loopsafe.W004",
        )
    ]


def check_settings_values(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """E001: values of settings.LOOPSAFE that the pool would refuse, one error per key."""
    return [
        checks.Error(
            f"{conf.label(key)} {message}.",
            hint="See loopsafe.django.conf for each key's type and range.",
            id="loopsafe.E001",
        )
        for key, message in conf.problems(getattr(settings, "LOOPSAFE", None))
    ]


def check_settings_keys(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W005: keys of settings.LOOPSAFE that loopsafe does not know."""
    raw = getattr(settings, "LOOPSAFE", None)
    if not isinstance(raw, dict):
        return []
    messages: list[CheckMessage] = []
    for key in sorted(str(k) for k in raw if k not in conf.DEFAULTS):
        close = conf.suggestion(key)
        known = ", ".join(conf.DEFAULTS)
        hint = f"Did you mean {close!r}?" if close else f"Known keys: {known}."
        messages.append(
            checks.Warning(
                f"LOOPSAFE has an unknown key {key!r}; it is ignored.",
                hint=hint,
                id="loopsafe.W005",
            )
        )
    return messages


def check_middleware(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W006: no OverloadMiddleware, so an overloaded login answers 500."""
    from loopsafe.django.middleware import OverloadMiddleware

    for path in getattr(settings, "MIDDLEWARE", None) or ():
        try:
            middleware = import_string(path)
        except ImportError:
            continue
        if isinstance(middleware, type) and issubclass(middleware, OverloadMiddleware):
            return []
    return [
        checks.Warning(
            "OverloadMiddleware is not in MIDDLEWARE: a login refused by loopsafe's admission "
            "control (loopsafe.Overloaded) answers HTTP 500 instead of 503 with Retry-After.",
            hint=f"Add {_MIDDLEWARE!r} to MIDDLEWARE.",
            id="loopsafe.W006",
        )
    ]


def check_sync_only_backends(app_configs: object = None, **_: object) -> list[CheckMessage]:  # noqa: ARG001
    """W007: backends whose ``authenticate`` an async login skips (or crashes on)."""
    if DJANGO_VERSION < (5, 0):
        return []  # no Django aauthenticate; loopsafe's asks synchronous backends itself
    from loopsafe.django._sync_backends import bypass_kind, configured_backend_classes

    messages: list[CheckMessage] = []
    for path, cls in configured_backend_classes():
        kind = bypass_kind(cls)
        if kind is None:
            continue
        if kind == "crash":
            what = (
                f"{path} has only a synchronous authenticate() and no aauthenticate(): "
                "Django's aauthenticate() raises AttributeError on it, so every async login "
                "fails with an error (HTTP 500) and no failure is recorded."
            )
        else:
            inherited = next(k for k in cls.__mro__ if "aauthenticate" in vars(k))
            what = (
                f"{path} overrides only the synchronous authenticate(): its aauthenticate() is "
                f"{inherited.__module__}.{inherited.__qualname__}'s, which never calls it, so an "
                "async login skips it (a locked-out user's right password logs in)."
            )
        messages.append(
            checks.Warning(
                what,
                hint=(
                    "Set LOOPSAFE = {'PATCH_AUTH': True} or use "
                    f"{_BACKEND!r} in AUTHENTICATION_BACKENDS (loopsafe then gives the class an "
                    "aauthenticate() that runs its authenticate() off the loop), or await "
                    "loopsafe.django.aauthenticate() in async views."
                ),
                obj=path,
                id="loopsafe.W007",
            )
        )
    return messages


#: Every check, in id order; the app registers them with the `TAG` tag.
ALL_CHECKS: Final[tuple[Callable[..., list[CheckMessage]], ...]] = (
    check_settings_values,
    check_async_auth_backends,
    check_user_model,
    check_bcrypt,
    check_hasher_memory,
    check_settings_keys,
    check_middleware,
    check_sync_only_backends,
)
