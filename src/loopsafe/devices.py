"""Trusted devices first: signed device cookies, and the pool key and priority they earn.

Keyed admission shares the pool fairly between client keys, but a flood that
rotates over hundreds of addresses looks like hundreds of users. OWASP's
answer ("Slow Down Online Guessing Attacks with Device Cookies") is to let the
devices that have logged in before go first. `DeviceCookies` does that,
framework-neutral:

1. After a successful login, `DeviceCookies.issue` makes a token for the
   username, and the integration sets it as an HttpOnly cookie
   (`DeviceCookies.cookie_options` are the keyword arguments of ``set_cookie``
   in Starlette, Litestar, aiohttp and Django alike).
2. At the next login, `DeviceCookies.admission` reads the presented token for
   the username being tried: a valid one is hashed at ``priority`` (2 by
   default, above anonymous logins' 0) under the device's own key, so
   returning users are served ahead of an anonymous flood and are never
   grouped with its addresses; anything else gets the client's own key at
   priority 0.

The token is ``v1.<issued>.<device>.<mac>``: the issue time, 16 random bytes
naming the device, and an HMAC-SHA256 over those and the username, under a
key derived from the application's secret. The username is bound but not
carried; the password never enters it. A token presented for another
username, altered, expired (``max_age``) or dated in the future is simply not
trusted: the login goes on as an anonymous one.

Rotation: pass the new secret first and the old ones in ``old_secrets``
(Django: ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``); tokens under an old
secret stay valid until they expire, and each successful login re-issues
under the new one. Expiry: ``max_age`` (90 days by default) bounds a token's
life whatever the cookie's own expiry says; to revoke every device at once,
change the secret (or the ``salt``).

Nothing of a token reaches a log line, a metric or an exception: `Admission`'s
repr hides its key, and this module logs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from loopsafe._fair import check_key, check_priority

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from loopsafe._api import PasswordHash
    from loopsafe._fair import Key

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "DEFAULT_MAX_AGE",
    "TRUSTED_PRIORITY",
    "Admission",
    "DeviceCookies",
]

#: The cookie's name unless told otherwise.
DEFAULT_COOKIE_NAME: Final = "loopsafe_device"
#: Seconds a device token stays valid: 90 days.
DEFAULT_MAX_AGE: Final = 90 * 24 * 3600
#: The pool priority of a login from a trusted device (anonymous logins: 0).
TRUSTED_PRIORITY: Final = 2
#: Clock skew tolerated for a token's issue time, in seconds.
_SKEW: Final = 300
_VERSION: Final = "v1"
_DEVICE_BYTES: Final = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Admission:
    """How a login is admitted to the pool: its key, its priority, and whether it is trusted.

    Attributes:
        key: The pool key: the device's own key when trusted, else the client's.
        priority: The pool priority (`TRUSTED_PRIORITY` when trusted, else 0).
        trusted: Whether a valid device token for the username was presented.
    """

    key: Key = field(repr=False)
    priority: int = 0
    trusted: bool = False


class DeviceCookies:
    """Issue and verify device tokens bound to a username, under an application secret.

    Args:
        secret: The application's secret (Django's ``SECRET_KEY``, an env
            value...): str or bytes, at least 32 bytes.
        old_secrets: Secrets that still verify but no longer issue (rotation).
        max_age: Seconds a token stays valid.
        cookie_name: The cookie's name.
        priority: Pool priority of a trusted login (-3 to 3).
        secure: Whether the cookie is sent over HTTPS only (`cookie_options`).
        salt: Separates these tokens from other uses of the same secret.

    Raises:
        TypeError: A secret is not str or bytes, or another argument has the wrong type.
        ValueError: A secret is shorter than 32 bytes, or ``max_age`` is not positive.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        old_secrets: Sequence[str | bytes] = (),
        max_age: float = DEFAULT_MAX_AGE,
        cookie_name: str = DEFAULT_COOKIE_NAME,
        priority: int = TRUSTED_PRIORITY,
        secure: bool = True,
        salt: str = "loopsafe.devices",
    ) -> None:
        """Derive one signing key per secret; the first signs, all verify."""
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise TypeError(f"max_age must be a number of seconds, not {type(max_age).__name__}")
        if not max_age > 0:
            raise ValueError("max_age must be positive")
        if not isinstance(cookie_name, str):
            raise TypeError(f"cookie_name must be a str, not {type(cookie_name).__name__}")
        if not cookie_name:
            raise ValueError("cookie_name must not be empty")
        check_priority(priority)
        self._keys = [self._derive(s, salt) for s in (secret, *old_secrets)]
        self.max_age = float(max_age)
        self.cookie_name = cookie_name
        self.priority = priority
        self.secure = bool(secure)

    def __repr__(self) -> str:
        """Name the cookie and the settings, never a secret."""
        return (
            f"DeviceCookies(cookie_name={self.cookie_name!r}, max_age={self.max_age:.0f}, "
            f"priority={self.priority}, secrets={len(self._keys)})"
        )

    @staticmethod
    def _derive(secret: str | bytes, salt: str) -> bytes:
        if isinstance(secret, str):
            secret = secret.encode()
        if not isinstance(secret, bytes):
            raise TypeError(f"a secret must be str or bytes, not {type(secret).__name__}")
        if len(secret) < 32:  # noqa: PLR2004 - 256 bits, HMAC-SHA256's key size
            raise ValueError("a device-cookie secret must be at least 32 bytes")
        return hmac.new(secret, salt.encode(), hashlib.sha256).digest()

    @staticmethod
    def _mac(key: bytes, issued: str, device: str, username: str) -> bytes:
        message = f"{_VERSION}|{issued}|{device}|{username}".encode()
        return hmac.new(key, message, hashlib.sha256).digest()

    def issue(self, username: str, *, now: float | None = None) -> str:
        """Return a new device token for ``username`` (set it as the cookie after a login).

        Raises:
            TypeError: ``username`` is not a str.
        """
        if not isinstance(username, str):
            raise TypeError(f"username must be a str, not {type(username).__name__}")
        issued = format(int(time.time() if now is None else now), "x")
        device = _b64(secrets.token_bytes(_DEVICE_BYTES))
        mac = _b64(self._mac(self._keys[0], issued, device, username))
        return f"{_VERSION}.{issued}.{device}.{mac}"

    def device_of(self, token: object, username: object, *, now: float | None = None) -> str | None:
        """Return the device id of a valid ``token`` for ``username``, else None (never raises)."""
        if not isinstance(token, str) or not isinstance(username, str) or len(token) > 256:  # noqa: PLR2004 - a token is ~80 characters
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:  # noqa: PLR2004 - version, issued, device, mac
            return None
        _, issued, device, mac = parts
        try:
            issued_at = int(issued, 16)
            presented = _unb64(mac)
        except ValueError:
            return None
        clock = time.time() if now is None else now
        if issued_at > clock + _SKEW or clock - issued_at > self.max_age:
            return None
        valid = False
        for key in self._keys:  # every key, whatever matches, so timing tells nothing
            valid |= hmac.compare_digest(self._mac(key, issued, device, username), presented)
        return device if valid else None

    def verify(self, token: object, username: object, *, now: float | None = None) -> bool:
        """Whether ``token`` is a valid, unexpired device token for ``username``."""
        return self.device_of(token, username, now=now) is not None

    def read(self, cookies: Mapping[str, Any] | None) -> str | None:
        """Return this cookie's value from a request's cookie mapping, or None."""
        if cookies is None:
            return None
        value = cookies.get(self.cookie_name)
        if value is not None and not isinstance(value, str):  # aiohttp's Morsel, say
            value = getattr(value, "value", None)
        return value if isinstance(value, str) else None

    def admission(self, token: object, username: object, client_key: Key = None) -> Admission:
        """Return the pool key and priority of a login attempt for ``username``.

        Args:
            token: The device cookie presented (or None).
            username: The account being tried.
            client_key: The client's own key (its address), used when the
                token is missing or not valid for ``username``.

        Raises:
            TypeError: ``client_key`` cannot be a pool key.
        """
        check_key(client_key)
        device = self.device_of(token, username)
        if device is None:
            return Admission(client_key, 0, trusted=False)
        return Admission(("loopsafe-device", device), self.priority, trusted=True)

    def bind(
        self, password_hash: PasswordHash, token: object, username: object
    ) -> tuple[PasswordHash, Admission]:
        """Return the `PasswordHash` to check this login with, and its `Admission`.

        ``password_hash`` is the one the integration already bound to the
        client's key (``get_password_hash(request)``): it is returned as it is
        unless ``token`` is a valid device token for ``username``; then a copy
        that passes the device's own key and `priority` to the pool. The one
        helper every integration calls.
        """
        admission = self.admission(token, username)
        if not admission.trusted:
            return password_hash, admission
        return password_hash.for_client(admission.key, priority=admission.priority), admission

    def cookie_options(self) -> dict[str, Any]:
        """Keyword arguments for ``response.set_cookie(name, token, **options)``.

        The same names in Starlette, Litestar, aiohttp and Django:
        ``max_age``, ``httponly`` (always), ``secure``, ``samesite`` ("lax").
        """
        return {
            "max_age": int(self.max_age),
            "httponly": True,
            "secure": self.secure,
            "samesite": "lax",
        }

    def set_cookie(self, response: Any, username: str) -> None:  # noqa: ANN401 - any framework's response
        """Issue a token for ``username`` and set it on ``response`` with `cookie_options`."""
        response.set_cookie(self.cookie_name, self.issue(username), **self.cookie_options())
