"""Settings of the end-to-end benchmark's Django project, driven by environment variables.

``LOOPSAFE_E2E_DB``
    The SQLite file (the runner makes one per run in a temporary folder).
``LOOPSAFE_E2E_MODE``
    ``stock``: Django's own ``ModelBackend``, which checks passwords on the
    event loop (Django 4.2/5.2) or in the default executor (Django 6.x).
    ``loopsafe``: loopsafe's drop-in ``loopsafe.django.backends.ModelBackend``.
``LOOPSAFE_E2E_MAX_QUEUE_WAIT``
    Optional, loopsafe mode: ``LOOPSAFE["MAX_QUEUE_WAIT"]`` in seconds.
``LOOPSAFE_E2E_CLIENT_KEYS``
    Optional, loopsafe mode: ``0`` sets ``LOOPSAFE["CLIENT_KEY"] = None`` (no
    client keys: first come, first served; the flood benchmark's baseline).
``LOOPSAFE_E2E_ITERATIONS``
    Optional: PBKDF2 iterations for a cheap smoke run. Unset, the project keeps
    Django's default ``PASSWORD_HASHERS`` at the installed version's parameters.

No session, CSRF or message middleware: the benchmark measures password
checking, and a login answers 200 or 401 without logging anyone in (503 when
loopsafe's pool refuses it).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "loopsafe-e2e-benchmark-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "e2eproject.urls"
ASGI_APPLICATION = "e2eproject.asgi.application"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LOOPSAFE_E2E_DB", str(BASE_DIR / "e2e.sqlite3")),
        # Rehashing logins write while others read: wait for the lock, do not fail.
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}

MODE = os.environ.get("LOOPSAFE_E2E_MODE", "stock")
if MODE == "stock":
    AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
elif MODE == "loopsafe":
    # What the README tells a site to do: the app (it reads LOOPSAFE and adds
    # checks), the drop-in backend, and the middleware that answers a refused
    # login with 503 + Retry-After. One worker per usable core (the default);
    # the queue budget follows the clients' timeout when the runner gives it
    # (``loopsafe storm``'s rule: timeout - 2 hashes), else loopsafe's 1 s.
    INSTALLED_APPS += ["loopsafe.django"]
    AUTHENTICATION_BACKENDS = ["loopsafe.django.backends.ModelBackend"]
    MIDDLEWARE = ["loopsafe.django.middleware.OverloadMiddleware"]
    LOOPSAFE: dict[str, object] = {}
    if os.environ.get("LOOPSAFE_E2E_MAX_QUEUE_WAIT"):
        LOOPSAFE["MAX_QUEUE_WAIT"] = float(os.environ["LOOPSAFE_E2E_MAX_QUEUE_WAIT"])
    if os.environ.get("LOOPSAFE_E2E_CLIENT_KEYS") == "0":
        LOOPSAFE["CLIENT_KEY"] = None
else:
    message = f"LOOPSAFE_E2E_MODE must be 'stock' or 'loopsafe', not {MODE!r}"
    raise ValueError(message)

if os.environ.get("LOOPSAFE_E2E_ITERATIONS"):
    PASSWORD_HASHERS = ["e2eproject.hashers.ConfiguredPBKDF2PasswordHasher"]
