"""Authentication that never hashes on the event loop: the backend's logic and ``aauthenticate``.

`model_backend_aauthenticate` is the body of
``loopsafe.django.backends.ModelBackend.aauthenticate``; ``PATCH_AUTH`` puts
the same function on Django's own ``ModelBackend`` where Django hashes on the
loop. `aauthenticate` is Django's loop over the backends (a port on Django
4.2, which has none) that also asks synchronous-only gates such as
django-axes' backends.

Django is imported inside the functions: this module is imported with
``loopsafe.django``, before the app registry is ready.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from loopsafe.django import _replaced
from loopsafe.django._client import device_admission, using_key
from loopsafe.django._passwords import (
    acheck_user_password,
    arun_unknown_user_hasher,
    hide_passwords,
)
from loopsafe.django._sync_backends import abackend_authenticate

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.http import HttpRequest

__all__ = ["aauthenticate", "model_backend_aauthenticate", "uses_stock_acheck_password"]


def uses_stock_acheck_password(user: object) -> bool:
    """Whether ``user.acheck_password`` is Django's own (which hashes on the loop) or absent.

    A user model that overrides ``acheck_password`` (with loopsafe's mixin, or
    its own code) keeps its method; ``PATCH_AUTH``'s replacement counts as
    loopsafe's own.
    """
    from django.contrib.auth.base_user import AbstractBaseUser

    method = getattr(type(user), "acheck_password", None)
    if method is None:  # Django 4.2
        return True
    stock = _replaced.original(AbstractBaseUser, "acheck_password")
    return method is stock or method is _replaced.patched_user_acheck_password


@hide_passwords
async def _acheck(user: AbstractBaseUser, password: str) -> bool:
    if uses_stock_acheck_password(user):
        return await acheck_user_password(user, password)  # type: ignore[arg-type] # django-stubs types `password` as a CharField descriptor
    result: bool = await user.acheck_password(password)
    return result


async def model_backend_aauthenticate(
    self: Any,
    request: HttpRequest | None,
    username: str | None = None,
    password: str | None = None,
    **kwargs: Any,
) -> AbstractBaseUser | None:
    """Django's ``ModelBackend.aauthenticate`` with every hash on the loopsafe pool.

    The same steps as Django's: look the user up by natural key; for an unknown
    user, hash once anyway so the answer takes as long (Django ticket #20760);
    else check the password, saving an upgraded hash, and apply
    ``user_can_authenticate``. The hashes run under the request's client key
    (``LOOPSAFE["CLIENT_KEY"]``), so a flood from one client gives way first;
    a login presenting a valid device cookie for this username
    (`loopsafe.django.set_device_cookie`) runs under its device's own key at a
    higher priority, ahead of an anonymous flood.
    `loopsafe.Overloaded` propagates: Django's ``aauthenticate`` stops on it
    without sending ``user_login_failed``, and ``OverloadMiddleware`` answers 503.
    """
    from django.contrib.auth import backends

    # Looked up at each call, like Django: tests swap it with AUTH_USER_MODEL.
    user_model: Any = backends.UserModel
    if username is None:
        username = kwargs.get(user_model.USERNAME_FIELD)
    if username is None or password is None:
        return None
    if request is None:
        return await _authenticate_user(self, user_model, username, password)
    admission = device_admission(request, username)
    with using_key(admission.key, admission.priority):
        return await _authenticate_user(self, user_model, username, password)


@hide_passwords
async def _authenticate_user(
    backend: Any,
    user_model: Any,
    username: str,
    password: str,
) -> AbstractBaseUser | None:
    from asgiref.sync import sync_to_async

    manager = user_model._default_manager  # noqa: SLF001 - Django's own lookup
    try:
        if hasattr(manager, "aget_by_natural_key"):
            user = await manager.aget_by_natural_key(username)
        else:  # Django 4.2
            user = await sync_to_async(manager.get_by_natural_key)(username)
    except user_model.DoesNotExist:
        await arun_unknown_user_hasher(password)
        return None
    if await _acheck(user, password) and backend.user_can_authenticate(user):
        return user  # type: ignore[no-any-return] # the manager is untyped here
    return None


@hide_passwords
async def aauthenticate(
    request: HttpRequest | None = None,
    **credentials: Any,
) -> AbstractBaseUser | None:
    """Django's ``aauthenticate``, asking every backend, its synchronous-only gates included.

    The same steps as Django 5.2's and 6.x's (and a port on Django 4.2, which
    has none): try each backend in ``AUTHENTICATION_BACKENDS`` whose
    ``authenticate`` accepts the credentials; ``PermissionDenied`` stops the
    search; ``user_login_failed`` is sent when no backend accepts. One
    difference: a backend whose own ``authenticate`` is synchronous only
    (django-axes' ``AxesBackend`` and ``AxesStandaloneBackend``) is asked
    through that ``authenticate``, off the loop, rather than through an
    inherited ``aauthenticate`` that would skip it or one that is missing
    (`loopsafe.django._sync_backends`). So a locked-out login is refused
    before any hash, and its failure recorded. Any other exception,
    `loopsafe.Overloaded` included, propagates without the signal.

    Args:
        request: The current request, or None.
        **credentials: Passed to each backend (``username``, ``password``...).

    Returns:
        The authenticated user, with ``backend`` set to its backend's path, or None.
    """
    from asgiref.sync import sync_to_async
    from django.contrib import auth
    from django.contrib.auth.signals import user_login_failed
    from django.core.exceptions import PermissionDenied

    backends: list[tuple[Any, str]] = auth._get_backends(return_tuples=True)  # type: ignore[attr-defined] # noqa: SLF001 - Django's own loader
    for backend, backend_path in backends:
        try:
            inspect.signature(backend.authenticate).bind(request, **credentials)
        except TypeError:
            # This backend does not accept these credentials as arguments.
            continue
        try:
            user = await abackend_authenticate(backend, request, credentials)
        except PermissionDenied:
            # This backend says to stop in our tracks.
            break
        if user is None:
            continue
        user.backend = backend_path
        return user  # type: ignore[no-any-return] # backends are untyped
    cleaned = auth._clean_credentials(credentials)  # type: ignore[attr-defined] # noqa: SLF001
    if hasattr(user_login_failed, "asend"):
        await user_login_failed.asend(sender=auth.__name__, credentials=cleaned, request=request)
    else:  # Django 4.2
        await sync_to_async(user_login_failed.send)(
            sender=auth.__name__, credentials=cleaned, request=request
        )
    return None
