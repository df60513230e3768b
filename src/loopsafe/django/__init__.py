"""loopsafe for Django: ``django.contrib.auth`` whose async paths never block the event loop.

Django decides what is correct (``PASSWORD_HASHERS``, custom hashers
included); loopsafe decides where and when it runs: on the process-wide
`loopsafe.default_pool()`, with admission control in front.

The pieces, each usable alone:

- these functions, with Django's signatures: `averify_password`,
  `acheck_password`, `amake_password`, `aset_password`, and `aauthenticate`
  (Django's own from 5.0; a port on Django 4.2, which has none);
- ``"loopsafe.django"`` in ``INSTALLED_APPS``: reads ``settings.LOOPSAFE``
  (`loopsafe.django.conf`) and adds system checks;
- ``loopsafe.django.backends.ModelBackend`` for ``AUTHENTICATION_BACKENDS``;
- ``loopsafe.django.mixins.AsyncPasswordMixin`` for custom user models;
- ``LOOPSAFE = {"PATCH_AUTH": True}`` to patch stock Django instead
  (`loopsafe.django._patch` lists what, per version);
- ``loopsafe.django.middleware.OverloadMiddleware``: `loopsafe.Overloaded`
  becomes HTTP 503 with ``Retry-After``;
- ``manage.py loopsafe_check``: the pool, the hashers and their cost here;
- `client_address`, the default ``LOOPSAFE["CLIENT_KEY"]``: which client a
  request hashes for, so that a flood gets no more than its fair share;
- `set_device_cookie` after a successful login: the browser's next login
  for that username is hashed first, on its device's own key
  (`device_cookies`, signed under ``SECRET_KEY``; see `loopsafe.devices`).

Importing this package needs Django installed, not configured.
"""

from __future__ import annotations

try:
    import django  # noqa: F401 - only to name the extra when Django is missing
except ImportError as exc:  # pragma: no cover - exercised by a test that hides Django
    raise ImportError("loopsafe.django needs Django: pip install 'loopsafe[django]'") from exc

from loopsafe.django._authenticate import aauthenticate
from loopsafe.django._client import client_address, device_cookies, set_device_cookie
from loopsafe.django._passwords import (
    acheck_password,
    amake_password,
    aset_password,
    averify_password,
)

__all__ = [
    "aauthenticate",
    "acheck_password",
    "amake_password",
    "aset_password",
    "averify_password",
    "client_address",
    "device_cookies",
    "set_device_cookie",
]
