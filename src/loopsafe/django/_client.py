"""Which client a Django request hashes for: ``LOOPSAFE["CLIENT_KEY"]`` and the current key.

The key lets the pool share itself fairly between clients under a flood
(`loopsafe.HashPool.run`). `client_address` is the default: the address
Django sees, ``REMOTE_ADDR``. ``X-Forwarded-For`` is not read by default: any
client can send that header, so a flood trusting it would pick a fresh key per
request. Behind a proxy you control, see docs/fairness.md for a callable
that takes the address the proxy appended.

`OverloadMiddleware` and loopsafe's ``ModelBackend`` put the request's key in
a context variable for the request's duration; every pool call loopsafe makes
for Django (`averify_password`, the mixin's ``acheck_password``...) uses it
unless given ``key=``. Key values are client addresses: nothing here logs them.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from loopsafe._fair import check_key
from loopsafe.devices import DEFAULT_COOKIE_NAME, Admission, DeviceCookies

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from django.http import HttpRequest
    from django.http.response import HttpResponseBase

    from loopsafe._fair import Key

__all__ = [
    "client_address",
    "client_key",
    "configure",
    "current_key",
    "current_priority",
    "device_admission",
    "device_cookies",
    "set_device_cookie",
    "using_key",
]

_current: contextvars.ContextVar[Key] = contextvars.ContextVar("loopsafe_client_key", default=None)
_priority: contextvars.ContextVar[int] = contextvars.ContextVar("loopsafe_priority", default=0)
_devices: dict[tuple[object, ...], DeviceCookies] = {}
_resolved: dict[str, Callable[[HttpRequest], Any]] = {}
#: ``LOOPSAFE["CLIENT_KEY"]`` as `loopsafe.django.conf.apply` last set it (the
#: app applies it at start-up and whenever the setting changes).
_setting: str | Callable[..., object] | None = "loopsafe.django.client_address"


def client_address(request: HttpRequest) -> str | None:
    """Return ``request.META["REMOTE_ADDR"]``, the address Django sees, or None.

    The default ``LOOPSAFE["CLIENT_KEY"]``. Behind a reverse proxy it is the
    proxy's address (every client then shares one key: fairness does nothing,
    but nothing breaks either).
    """
    address = request.META.get("REMOTE_ADDR")
    return address if isinstance(address, str) and address else None


def configure(setting: str | Callable[..., object] | None) -> None:
    """Use ``setting`` (validated by `loopsafe.django.conf`) from now on."""
    global _setting  # noqa: PLW0603 - one process-wide setting, like Django's own
    _setting = setting


def _callable() -> Callable[[HttpRequest], Any] | None:
    setting = _setting
    if setting is None or callable(setting):
        return setting
    found = _resolved.get(setting)
    if found is None:
        from django.utils.module_loading import import_string

        try:
            found = import_string(setting)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"LOOPSAFE['CLIENT_KEY'] names {setting!r}, which cannot be imported: {exc}"
            ) from exc
        if not callable(found):
            raise ImproperlyConfigured(f"LOOPSAFE['CLIENT_KEY'] names {setting!r}: not callable")
        _resolved[setting] = found
    return found


def client_key(request: HttpRequest) -> Key:
    """Return the key of the client that sent ``request``, by ``LOOPSAFE["CLIENT_KEY"]``.

    Raises:
        ImproperlyConfigured: The setting names nothing callable, or the
            callable returned something that cannot be a key (the message
            names its type, never its value).
    """
    function = _callable()
    if function is None:
        return None
    key = function(request)
    try:
        check_key(key)
    except TypeError as exc:
        raise ImproperlyConfigured(f"LOOPSAFE['CLIENT_KEY'] returned a bad key: {exc}") from None
    return key  # type: ignore[no-any-return] # checked just above


def current_key() -> Key:
    """Return the key of the request being served (None outside one)."""
    return _current.get()


def current_priority() -> int:
    """Return the pool priority of the login being served (0 outside a trusted one)."""
    return _priority.get()


@contextlib.contextmanager
def using_key(key: Key, priority: int = 0) -> Iterator[None]:
    """Make ``key`` (and ``priority``) the current ones inside the ``with`` block."""
    token = _current.set(key)
    priority_token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(priority_token)
        _current.reset(token)


def device_cookies() -> DeviceCookies:
    """Return the `loopsafe.devices.DeviceCookies` of this project.

    Signed under ``SECRET_KEY``; ``SECRET_KEY_FALLBACKS`` still verify, so
    rotating the secret the Django way rotates device cookies too.

    Raises:
        ValueError: ``SECRET_KEY`` is shorter than 32 bytes (Django's own
            check, security.W009, asks for 50 characters).
    """
    from django.conf import settings

    secrets = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ()))
    found = _devices.get(secrets)
    if found is None:
        found = DeviceCookies(secrets[0], old_secrets=secrets[1:], secure=not settings.DEBUG)
        _devices.clear()
        _devices[secrets] = found
    return found


def device_admission(request: HttpRequest, username: object) -> Admission:
    """How a login for ``username`` in ``request`` is admitted: its device's key first.

    A valid device cookie for ``username`` gives the device's own key and a
    higher priority; anything else the client's key (``LOOPSAFE["CLIENT_KEY"]``).
    """
    key = client_key(request)
    token = request.COOKIES.get(DEFAULT_COOKIE_NAME)
    if token is None:  # the common case: no cookie, nothing to verify
        return Admission(key)
    try:
        devices = device_cookies()
    except ValueError:  # a SECRET_KEY too short to sign with: no cookie can be valid
        return Admission(key)
    return devices.admission(token, username, key)


def set_device_cookie(response: HttpResponseBase, username: str) -> None:
    """After a successful login, give the browser a device cookie for ``username``."""
    device_cookies().set_cookie(response, username)
