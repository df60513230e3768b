"""``PATCH_AUTH``: make stock ``django.contrib.auth`` async paths non-blocking, reversibly.

`patch` replaces only what hashes on the event loop (or outside the loopsafe
pool) in the installed Django version, found by feature, not by version
number; `unpatch` puts Django's functions back. Both are idempotent and
thread-safe; `patched` lists what is replaced now.

What is replaced, as read in Django's source:

Django 4.2 (4.2.30)
    Nothing: Django 4.2 has no async password API. Use loopsafe's
    ``ModelBackend`` with ``loopsafe.django.aauthenticate``, and
    ``AsyncPasswordMixin`` on a custom user model.

Django 5.0 to 5.2 (5.2.19)
    - ``django.contrib.auth.hashers.acheck_password``: verifies on the event
      loop. Replaced by ``loopsafe.django.acheck_password``.
    - ``AbstractBaseUser.acheck_password``: the same, and its setter rehashes
      on the loop. Replaced by one pool call that verifies and makes the new
      hash; only ``asave`` runs on the loop.
    - ``ModelBackend.aauthenticate``: for an unknown user, runs
      ``UserModel().set_password(password)`` on the loop. Replaced by
      loopsafe's ``ModelBackend.aauthenticate`` (subclasses such as
      ``AllowAllUsersModelBackend`` and ``RemoteUserBackend`` inherit it).

Django 6.x (6.1.3)
    - ``django.contrib.auth.hashers.acheck_password``: verifies through
      ``sync_to_async`` in asgiref's default executor, without admission
      control. Replaced as above.
    - ``AbstractBaseUser.acheck_password``: its setter still rehashes on the
      loop (a 1,500,000-iteration PBKDF2 after each upgrade). Replaced as above.
    - ``acheck_password_with_timing_attack_mitigation`` in
      ``django.contrib.auth`` and its binding in ``django.contrib.auth.backends``
      (which ``ModelBackend.aauthenticate`` calls): hashes for unknown users in
      the default executor. Replaced by the same logic on the loopsafe pool.
      ``ModelBackend.aauthenticate`` itself is left alone.

Synchronous paths are never touched, and neither are user models that define
their own ``acheck_password``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopsafe.django import _replaced
from loopsafe.django._passwords import (
    acheck_password,
    arun_unknown_user_hasher,
    hide_passwords,
)
from loopsafe.django._replaced import original, patched_user_acheck_password

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = [
    "original",
    "patch",
    "patched",
    "patched_user_acheck_password",
    "unpatch",
]


@hide_passwords
async def patched_acheck_password_with_timing_attack_mitigation(
    user: AbstractBaseUser | None, password: str
) -> bool | None:
    """Django 6's helper: check the user's password, or hash once for a missing user, off-loop."""
    if user is None:
        await arun_unknown_user_hasher(password)
        return None
    result: bool = await user.acheck_password(password)
    return result


def _targets() -> dict[tuple[object, str], Any]:
    """Return what to replace in the installed Django: (owner, attribute) -> replacement."""
    from django.contrib import auth
    from django.contrib.auth import backends, hashers
    from django.contrib.auth.base_user import AbstractBaseUser

    from loopsafe.django.backends import ModelBackend

    targets: dict[tuple[object, str], Any] = {}
    if not hasattr(hashers, "acheck_password"):
        return targets  # Django 4.2: no async password paths at all
    targets[hashers, "acheck_password"] = acheck_password
    targets[AbstractBaseUser, "acheck_password"] = patched_user_acheck_password
    helper = "acheck_password_with_timing_attack_mitigation"
    if hasattr(auth, helper):
        # Django 6.x: aauthenticate delegates every hash to this helper.
        targets[auth, helper] = patched_acheck_password_with_timing_attack_mitigation
        if hasattr(backends, helper):
            targets[backends, helper] = patched_acheck_password_with_timing_attack_mitigation
    else:
        # Django 5.x: aauthenticate hashes for unknown users itself.
        targets[backends.ModelBackend, "aauthenticate"] = ModelBackend.__dict__["aauthenticate"]
    return targets


def _name(owner: object) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return str(getattr(owner, "__name__", owner))


def patch() -> tuple[str, ...]:
    """Replace Django's async password paths that block the loop; a no-op if already done.

    Returns:
        What is patched now, as dotted names (empty on Django 4.2).
    """
    with _replaced.lock:
        if not _replaced.originals:
            for (owner, attr), replacement in _targets().items():
                _replaced.originals[owner, attr] = _replaced.own_attribute(owner, attr)
                _replaced.replacements[owner, attr] = replacement
                setattr(owner, attr, replacement)
        return _names()


def unpatch() -> None:
    """Put Django's own functions back; a no-op if nothing is patched.

    An attribute that someone else replaced after `patch` (a test's
    ``mock.patch``, say) is left as it is.
    """
    with _replaced.lock:
        for (owner, attr), saved in _replaced.originals.items():
            if _replaced.own_attribute(owner, attr) is not _replaced.replacements[owner, attr]:
                continue
            if saved is _replaced.ABSENT:
                delattr(owner, attr)
            else:
                setattr(owner, attr, saved)
        _replaced.originals.clear()
        _replaced.replacements.clear()


def patched() -> tuple[str, ...]:
    """Return what is patched now, as dotted names.

    For example ``django.contrib.auth.hashers.acheck_password``.
    """
    with _replaced.lock:
        return _names()


def _names() -> tuple[str, ...]:
    return tuple(sorted(f"{_name(owner)}.{attr}" for owner, attr in _replaced.originals))
