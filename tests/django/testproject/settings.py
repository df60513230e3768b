"""Settings of the test project: loopsafe's app, backend and middleware, cheap hashers, SQLite.

Importable as ``testproject.settings`` once ``tests/django`` is on ``sys.path``.
The database is a file in the temporary folder, one per process; the test
database (``TEST.NAME``) is created by ``tests/django/conftest.py``.

PBKDF2 runs at 100,000 iterations (``testproject.hashers``): cheap enough for
a fast suite, costly enough that hashing on the event loop would show as
tens of milliseconds of loop lag per login.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

_TMP = Path(tempfile.gettempdir())

SECRET_KEY = "loopsafe-tests-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "loopsafe.django",
    "testproject",
]
#: django-axes (a test dependency) when installed: off unless a test turns it on
#: (tests/django/test_axes.py), so other tests' failed logins lock nobody out.
HAS_AXES = importlib.util.find_spec("axes") is not None
if HAS_AXES:
    INSTALLED_APPS.append("axes")
AXES_ENABLED = False
MIDDLEWARE = [
    "loopsafe.django.middleware.OverloadMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "testproject.urls"
AUTHENTICATION_BACKENDS = ["loopsafe.django.backends.ModelBackend"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_TMP / f"loopsafe-testproject-{os.getpid()}.sqlite3"),
        # Rehashing logins write while others read: wait for the lock.
        "OPTIONS": {"timeout": 30},
        "TEST": {"NAME": str(_TMP / f"loopsafe-testproject-test-{os.getpid()}.sqlite3")},
    }
}

#: The first hasher makes new hashes; the others still verify (and upgrade) old ones.
PASSWORD_HASHERS = [
    "testproject.hashers.TestPBKDF2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]

LOOPSAFE = {
    "MAX_WORKERS": 2,
    # No wait-based refusals in ordinary tests: 20 logins queue on a busy machine.
    "MAX_QUEUE_WAIT": None,
    "MAX_PENDING": 1024,
    "PATCH_AUTH": False,
}

LOGGING_CONFIG = None
