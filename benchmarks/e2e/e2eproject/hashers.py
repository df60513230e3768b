"""A PBKDF2 hasher whose iterations come from the environment (for cheap smoke runs only)."""

from __future__ import annotations

import os

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class ConfiguredPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 at ``LOOPSAFE_E2E_ITERATIONS`` iterations."""

    iterations = int(os.environ.get("LOOPSAFE_E2E_ITERATIONS") or PBKDF2PasswordHasher.iterations)
