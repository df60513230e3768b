"""A custom user model with loopsafe's `AsyncPasswordMixin` (not ``AUTH_USER_MODEL``)."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models

from loopsafe.django.mixins import AsyncPasswordMixin


class MixinUser(AsyncPasswordMixin, AbstractBaseUser):  # type: ignore[misc] # django-stubs
    """A minimal user whose async password methods hash on the loopsafe pool."""

    username = models.CharField(max_length=150, unique=True)

    USERNAME_FIELD = "username"

    objects = BaseUserManager()  # type: ignore[var-annotated]

    class Meta:
        """The test project's own app."""

        app_label = "testproject"
