"""loopsafe's ``ModelBackend``: Django's ``ModelBackend`` whose async path never blocks.

Put it in ``AUTHENTICATION_BACKENDS`` in place of Django's::

    AUTHENTICATION_BACKENDS = ["loopsafe.django.backends.ModelBackend"]

It works with the stock ``auth.User`` and any custom user model. Its
``aauthenticate`` hashes on the loopsafe pool in every case: a right or wrong
password, an unknown user (the timing mitigation of Django ticket #20760) and
a login whose hash must be upgraded (verification and new hash in one pool
call; only the save runs on the loop). The synchronous ``authenticate`` and
everything else is Django's.
"""

from __future__ import annotations

from django.contrib.auth import backends

from loopsafe.django._authenticate import model_backend_aauthenticate
from loopsafe.django._passwords import hide_passwords

__all__ = ["AllowAllUsersModelBackend", "ModelBackend"]

# Django 5.0+ hides `password` in error reports of this coroutine's frame; on
# 4.2 the marker is skipped (it would make aauthenticate a plain function).
_aauthenticate = hide_passwords(model_backend_aauthenticate)


class ModelBackend(backends.ModelBackend):
    """Authenticate against ``settings.AUTH_USER_MODEL``, hashing only on the loopsafe pool.

    ``aauthenticate`` raises `loopsafe.Overloaded` when the pool refuses the
    check: Django's ``aauthenticate`` lets it through without sending
    ``user_login_failed``, and ``OverloadMiddleware`` answers HTTP 503.
    """

    aauthenticate = _aauthenticate


class AllowAllUsersModelBackend(ModelBackend):
    """`ModelBackend` that lets inactive users in too, like Django's of the same name."""

    def user_can_authenticate(self, user: object) -> bool:  # noqa: ARG002 - Django's signature
        """Accept every user, active or not."""
        return True
