"""The login server that benchmarks/memory_cgroup.py runs inside a memory cgroup.

One Starlette app, three ways to check a password, chosen by ``BENCH_VARIANT``:

- ``django``: stock ``django.contrib.auth.hashers.acheck_password`` (Django
  6.1 runs the hash through ``sync_to_async(thread_sensitive=False)``, i.e. on
  the loop's default executor; Django 5.2 hashes on the loop).
- ``pwdlib``: pwdlib's Argon2 hasher through ``loop.run_in_executor(None,
  ...)``, as litestar-fullstack does.
- ``loopsafe``: ``loopsafe.django.acheck_password`` with default settings,
  and loopsafe's Starlette handlers (`Overloaded` -> 503 + ``Retry-After``).

The stored hash comes in ``BENCH_ENCODED`` (Django's ``argon2$argon2id$...``
format; pwdlib gets the same PHC string without Django's prefix).
``BENCH_CPU_COUNT``, when set, is what ``os.cpu_count()`` returns in this
process: asyncio sizes its default executor from it (``min(32, cpu_count +
4)``), so ``16`` gives the stock servers the 20 threads they have on a
16-core node whatever the pod's CPU limit. It is set before anything reads it.
"""

from __future__ import annotations

import os

if os.environ.get("BENCH_CPU_COUNT"):
    _CPUS = int(os.environ["BENCH_CPU_COUNT"])
    os.cpu_count = lambda: _CPUS  # what a container on a bigger node sees

import asyncio
from typing import TYPE_CHECKING

import django
from django.conf import settings
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loopsafe import container_limits, default_pool

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["app"]

VARIANT = os.environ.get("BENCH_VARIANT", "loopsafe")
ENCODED = os.environ["BENCH_ENCODED"]

settings.configure(
    PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

exception_handlers = {}
if VARIANT == "django":
    from django.contrib.auth.hashers import acheck_password

    async def check(password: str) -> bool:
        """Stock Django."""
        return await acheck_password(password, ENCODED)

elif VARIANT == "pwdlib":
    from pwdlib.hashers.argon2 import Argon2Hasher

    # Django's defaults, so both read the same hash at the same cost.
    _hasher = Argon2Hasher(time_cost=2, memory_cost=102400, parallelism=8)
    _PHC = ENCODED.removeprefix("argon2")

    async def check(password: str) -> bool:
        """Run pwdlib on the loop's default executor (litestar-fullstack's pattern)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _hasher.verify, password, _PHC)

elif VARIANT == "loopsafe":
    from loopsafe.django import acheck_password as loopsafe_acheck_password
    from loopsafe.starlette import EXCEPTION_HANDLERS

    exception_handlers = dict(EXCEPTION_HANDLERS)

    async def check(password: str) -> bool:
        """Run loopsafe's drop-in, default settings."""
        return await loopsafe_acheck_password(password, ENCODED)

else:  # pragma: no cover - a typo in the benchmark
    raise SystemExit(f"unknown BENCH_VARIANT {VARIANT!r}")


async def login(request: Request) -> Response:
    """Check the posted password against the stored hash."""
    password = (await request.body()).decode()
    ok = await check(password)
    return JSONResponse({"ok": ok}, status_code=200 if ok else 401)


async def health(_request: Request) -> Response:
    """Answer at once, with what the process sees."""
    executor_threads = min(32, (os.cpu_count() or 1) + 4)
    extra: dict[str, object] = {}
    if VARIANT == "loopsafe":
        stats = default_pool().statistics()
        extra = {"max_workers": stats.max_workers, "limits": container_limits().describe()}
    return JSONResponse(
        {"pid": os.getpid(), "variant": VARIANT, "default_executor": executor_threads, **extra}
    )


app = Starlette(
    routes=[Route("/login", login, methods=["POST"]), Route("/health", health)],
    exception_handlers=exception_handlers,  # type: ignore[arg-type]
)
