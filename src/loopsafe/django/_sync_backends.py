"""Backends whose only ``authenticate`` is synchronous: finding them, asking them on async logins.

Django's ``aauthenticate`` awaits each backend's ``aauthenticate``. A backend
class that overrides only the synchronous ``authenticate`` is then either
*bypassed* — it inherits an ``aauthenticate`` from a base class that never
calls the override (django-axes' ``AxesBackend`` inherits
``ModelBackend.aauthenticate``, which checks the password without asking axes
whether the user is locked out) — or *crashes* it with ``AttributeError``
(django-axes' ``AxesStandaloneBackend`` has no ``aauthenticate`` at all).

The fix is the one Django's own ``BaseBackend.aauthenticate`` applies: run the
class's synchronous ``authenticate`` through ``sync_to_async``. Such a
backend is a gate (a lockout check, an allow-list): it raises
``PermissionDenied`` or returns None before any hash, and the next backend
(loopsafe's ``ModelBackend``) hashes on the pool.

- `bypass_kind` tells which of the two a class is, found by where its methods
  come from in its MRO, not by its name: nothing here knows axes.
- `abackend_authenticate` awaits the right method of one backend;
  `loopsafe.django.aauthenticate` uses it for every backend.
- `bridge` gives each such configured class an ``aauthenticate`` that runs its
  ``authenticate`` off the loop, so Django's own ``aauthenticate`` asks it too;
  `unbridge` takes them back. The app bridges while loopsafe serves async
  logins (``PATCH_AUTH``, or loopsafe's ``ModelBackend`` configured); the
  ``loopsafe.W007`` check names the classes left unbridged.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from loopsafe.django._passwords import hide_passwords

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.http import HttpRequest

__all__ = [
    "abackend_authenticate",
    "bridge",
    "bridged",
    "bypass_kind",
    "configured_backend_classes",
    "unbridge",
]

_ABSENT: Any = object()
_lock = threading.Lock()
#: class -> what ``vars(class)["aauthenticate"]`` was before `bridge` (or _ABSENT).
_saved: dict[type, Any] = {}


@hide_passwords
async def _bridged_aauthenticate(self: Any, request: HttpRequest | None, **credentials: Any) -> Any:
    """Run this backend's own synchronous ``authenticate`` off the loop, as ``BaseBackend`` does."""
    from asgiref.sync import sync_to_async

    return await sync_to_async(self.authenticate)(request, **credentials)


def _owner(cls: type, name: str) -> type | None:
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def bypass_kind(cls: type) -> Literal["bypass", "crash"] | None:
    """Whether an async login skips this class's ``authenticate`` ("bypass"), crashes, or neither.

    "crash": the class has an ``authenticate`` but no ``aauthenticate``
    (Django 5.0+ raises ``AttributeError``). "bypass": its ``aauthenticate``
    comes from a class further down its MRO than its ``authenticate``, and is
    not Django's ``BaseBackend.aauthenticate`` (which calls ``authenticate``).
    """
    auth_owner = _owner(cls, "authenticate")
    if auth_owner is None:
        return None
    aauth_owner = _owner(cls, "aauthenticate")
    if aauth_owner is None:
        return "crash"
    method = vars(aauth_owner)["aauthenticate"]
    if method is _bridged_aauthenticate or _is_base_backend_method(aauth_owner):
        return None
    mro = cls.__mro__
    return "bypass" if mro.index(auth_owner) < mro.index(aauth_owner) else None


def _is_base_backend_method(owner: type) -> bool:
    from django.contrib.auth import backends

    return owner is backends.BaseBackend


@hide_passwords
async def abackend_authenticate(
    backend: Any, request: HttpRequest | None, credentials: dict[str, Any]
) -> Any:
    """Ask one backend: its ``aauthenticate``, or its own ``authenticate`` off the loop.

    Raises:
        PermissionDenied: The backend refuses the login outright (a lockout).
    """
    if not hasattr(backend, "aauthenticate") or bypass_kind(type(backend)) is not None:
        return await _bridged_aauthenticate(backend, request, **credentials)
    return await backend.aauthenticate(request, **credentials)


def configured_backend_classes() -> list[tuple[str, type]]:
    """Return ``(path, class)`` of each importable class in ``AUTHENTICATION_BACKENDS``."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    found = []
    for path in settings.AUTHENTICATION_BACKENDS:
        try:
            cls = import_string(path)
        except ImportError:
            continue  # Django reports a bad path itself
        if isinstance(cls, type):
            found.append((path, cls))
    return found


def bridge(classes: Iterable[type]) -> None:
    """Give each class that `bypass_kind` flags an ``aauthenticate`` that runs its ``authenticate``.

    What an earlier call bridged is taken back first, so the result depends
    only on ``classes``. A class whose base is bridged inherits the bridge
    (``AxesBackend`` after ``AxesStandaloneBackend``) and is left alone.
    """
    with _lock:
        for cls in list(_saved):
            _restore(cls)
        for cls in classes:
            if cls not in _saved and bypass_kind(cls) is not None:
                _saved[cls] = vars(cls).get("aauthenticate", _ABSENT)
                cls.aauthenticate = _bridged_aauthenticate  # type: ignore[attr-defined]


def unbridge() -> None:
    """Take back every ``aauthenticate`` that `bridge` added; a no-op if none."""
    with _lock:
        for cls in list(_saved):
            _restore(cls)


def _restore(cls: type) -> None:
    saved = _saved.pop(cls)
    if vars(cls).get("aauthenticate") is not _bridged_aauthenticate:
        return  # someone replaced it since: leave theirs
    if saved is _ABSENT:
        delattr(cls, "aauthenticate")
    else:
        setattr(cls, "aauthenticate", saved)  # noqa: B010 - the name is fixed, the class is not


def bridged() -> tuple[str, ...]:
    """Return the classes bridged now, as dotted names."""
    with _lock:
        return tuple(sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in _saved))
