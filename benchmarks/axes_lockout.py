"""django-axes lockouts on async logins: the table of docs/django.md.

For each django-axes backend, each way loopsafe serves async logins (none,
``PATCH_AUTH`` with Django's ``ModelBackend``, loopsafe's ``ModelBackend``),
each entry (Django's ``aauthenticate``, ``loopsafe.django.aauthenticate``) and
each order of the failures (Django's sync ``authenticate``, or the async entry):
record ``AXES_FAILURE_LIMIT = 3`` failures for a fresh username, then try the
right password through the async entry. Printed: failures axes recorded, what
the right password got (refused / LOGGED IN / the exception), and the hashes
computed for it (counted by the configured hasher). Then the same over HTTP
through the ASGI handler with axes' middleware: the status of each answer.

Run from the repository root (uses the test project in tests/django)::

    python benchmarks/axes_lockout.py

Cheap PBKDF2 (the test project's); it measures behaviour, not speed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "django"))
os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"

import django  # noqa: E402 - after the settings module is chosen

django.setup()

from importlib import metadata  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from asgiref.sync import sync_to_async  # noqa: E402
from axes.models import AccessAttempt  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import aauthenticate, authenticate  # noqa: E402
from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.test import AsyncClient, RequestFactory, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

import loopsafe  # noqa: E402
import loopsafe.django  # noqa: E402

if TYPE_CHECKING:
    from django.http import HttpRequest

LIMIT = 3
RIGHT, WRONG = "right-pw-123", "wrong-pw-456"
AXES = {
    "AxesBackend": "axes.backends.AxesBackend",
    "AxesStandalone": "axes.backends.AxesStandaloneBackend",
}
MODES = {
    "stock Django": ("django.contrib.auth.backends.ModelBackend", False),
    "PATCH_AUTH": ("django.contrib.auth.backends.ModelBackend", True),
    "loopsafe backend": ("loopsafe.django.backends.ModelBackend", False),
}
_names = (f"table-user-{n}" for n in itertools.count())


class Counting(PBKDF2PasswordHasher):
    """PBKDF2 at 100,000 iterations that counts each hash (defined here: old checkouts run this)."""

    algorithm = "pbkdf2_sha256_counted"
    iterations = 100_000
    hashes = 0

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        """Count one hash, then encode as Django does."""
        type(self).hashes += 1
        return super().encode(password, salt, iterations)


COUNTING = f"{__name__}.Counting"


def overrides(axes_backend: str, mode: str, *, middleware: bool = False) -> override_settings:
    """The settings of one case."""
    model_backend, patch = MODES[mode]
    extra: dict[str, Any] = {}
    if middleware:
        extra["MIDDLEWARE"] = [*settings.MIDDLEWARE, "axes.middleware.AxesMiddleware"]
    return override_settings(
        AXES_ENABLED=True,
        AXES_FAILURE_LIMIT=LIMIT,
        AXES_LOCKOUT_PARAMETERS=["username"],
        AUTHENTICATION_BACKENDS=[AXES[axes_backend], model_backend],
        PASSWORD_HASHERS=[COUNTING, "django.contrib.auth.hashers.PBKDF2PasswordHasher"],
        LOOPSAFE={**settings.LOOPSAFE, "PATCH_AUTH": patch},
        **extra,
    )


def request_for(username: str, password: str) -> HttpRequest:
    """A login POST from one address."""
    return RequestFactory().post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7"
    )


async def one_case(axes_backend: str, mode: str, entry: str, order: str) -> tuple[int, str, int]:
    """Return (failures recorded, right password's outcome, hashes while locked out)."""
    function = aauthenticate if entry == "django" else loopsafe.django.aauthenticate
    username = next(_names)
    with overrides(axes_backend, mode):
        await sync_to_async(User.objects.create_user)(username, password=RIGHT)
        outcome = ""
        try:
            for _ in range(LIMIT):
                if order == "sync":
                    await sync_to_async(authenticate)(
                        request_for(username, WRONG), username=username, password=WRONG
                    )
                else:
                    await function(request_for(username, WRONG), username=username, password=WRONG)
        except Exception as exc:  # noqa: BLE001 - the table reports it
            outcome = f"{type(exc).__name__} while failing"
        attempt = await AccessAttempt.objects.filter(username=username).afirst()
        failures = 0 if attempt is None else attempt.failures_since_start
        before = Counting.hashes
        try:
            user = await function(request_for(username, RIGHT), username=username, password=RIGHT)
            right = "LOGGED IN" if user is not None else "refused"
        except Exception as exc:  # noqa: BLE001 - the table reports it
            right = type(exc).__name__
        return failures, outcome or right, Counting.hashes - before


async def http_case(axes_backend: str, mode: str, url: str) -> tuple[list[int], int]:
    """Return the statuses of LIMIT + 1 wrong passwords, then the right one, and its hashes."""
    username = next(_names)
    with overrides(axes_backend, mode, middleware=True):
        await sync_to_async(User.objects.create_user)(username, password=RIGHT)
        client = AsyncClient(REMOTE_ADDR="203.0.113.7", raise_request_exception=False)
        statuses = []
        for password in [WRONG] * (LIMIT + 1):
            response = await client.post(url, {"username": username, "password": password})
            statuses.append(response.status_code)
        before = Counting.hashes
        response = await client.post(url, {"username": username, "password": RIGHT})
        statuses.append(response.status_code)
        return statuses, Counting.hashes - before


async def main() -> None:
    """Print both tables."""
    print(
        f"django {django.get_version()}, django-axes",
        metadata.version("django-axes"),
        f"loopsafe from {Path(loopsafe.__file__).parent.parent.name}",
    )
    print("| axes backend | loopsafe | entry | failures via | recorded | right password | hashes |")
    print("|---|---|---|---|---|---|---|")
    locked = total = 0
    for axes_backend, mode, entry, order in itertools.product(
        AXES, MODES, ("django", "loopsafe"), ("sync", "async")
    ):
        failures, right, hashes = await one_case(axes_backend, mode, entry, order)
        if mode != "stock Django":
            total += 1
            locked += right == "refused" and hashes == 0
        print(
            f"| {axes_backend} | {mode} | {entry}.aauthenticate | {order} | {failures} "
            f"| {right} | {hashes} |"
        )
    print(f"\nasync cases with loopsafe locked out with 0 hashes: {locked} of {total}\n")
    print("| axes backend | loopsafe | view calls | statuses (4 wrong, then right) | hashes |")
    print("|---|---|---|---|---|")
    for axes_backend, mode, url in itertools.product(AXES, MODES, ("/login-django/", "/login/")):
        statuses, hashes = await http_case(axes_backend, mode, url)
        via = "django" if url == "/login-django/" else "loopsafe"
        print(f"| {axes_backend} | {mode} | {via}.aauthenticate | {statuses} | {hashes} |")


if __name__ == "__main__":
    from django.db import connection

    settings.LOOPSAFE = {**settings.LOOPSAFE}
    setup_test_environment()
    old = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        asyncio.run(main())
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)
