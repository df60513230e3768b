"""One login's trip through loopsafe: the modules it crosses and HashPool's size.

Run it with the checkout to measure first on the path::

    python benchmarks/engine_trip.py

It warms a one-worker pool with one call, then traces (``sys.setprofile`` and
``threading.setprofile``, so the worker thread is seen too) one
`PasswordHash.averify` and one Django ``acheck_password`` (through
``loopsafe.django``, Django configured in memory with its cheap MD5 hasher:
only the path counts), and prints the loopsafe modules each call entered.
Then HashPool's instance attributes (its own and its parts') and the methods
on its class.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from typing import Any

import django
from django.conf import settings

settings.configure(
    # Cheap: only the path counts.
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402 - after Django is configured

import loopsafe  # noqa: E402
from loopsafe import HashPool, PasswordHash, PBKDF2Hasher  # noqa: E402
from loopsafe import django as loopsafe_django  # noqa: E402

_SEEN: set[str] = set()
_RECORDING = threading.Event()


def _profile(frame: Any, event: str, arg: object) -> None:  # noqa: ANN401, ARG001
    if event == "call" and _RECORDING.is_set():
        name = frame.f_globals.get("__name__", "")
        if name.startswith("loopsafe"):
            _SEEN.add(name)


# Installed before any worker thread starts, so every thread inherits it.
threading.setprofile(_profile)
sys.setprofile(_profile)


def _trace(run: Any) -> list[str]:  # noqa: ANN401 - any coroutine function
    _SEEN.clear()
    _RECORDING.set()
    try:
        asyncio.run(run())
    finally:
        _RECORDING.clear()
    return sorted(_SEEN)


def _parts(pool: HashPool) -> dict[str, int]:
    """Instance attributes of the pool and of each part it holds (a loopsafe object)."""
    out = {"HashPool": len(vars(pool))}
    for name, value in vars(pool).items():
        if type(value).__module__.startswith("loopsafe") and hasattr(value, "__dict__"):
            out[f"  .{name} ({type(value).__name__})"] = len(vars(value))
    return out


def main() -> None:
    """Trace one warm averify and one warm Django acheck_password; count HashPool's members."""
    pool = HashPool(1, name="trip")
    ph = PasswordHash([PBKDF2Hasher(iterations=1000)], pool=pool)
    stored = ph.hash("pw")

    async def warm() -> None:
        await ph.averify("pw", stored)

    asyncio.run(warm())

    async def one_averify() -> None:
        await ph.averify("pw", stored)

    modules = _trace(one_averify)
    print(f"PasswordHash.averify: {len(modules)} loopsafe modules: {', '.join(modules)}")

    encoded = make_password("pw")

    async def one_django() -> None:
        await loopsafe_django.acheck_password("pw", encoded)

    asyncio.run(one_django())  # warm: the default pool's first call
    modules = _trace(one_django)
    print(f"django acheck_password: {len(modules)} loopsafe modules: {', '.join(modules)}")

    methods = [
        name
        for name, member in inspect.getmembers(HashPool)
        if (inspect.isfunction(member) or isinstance(member, property))
        and not (name.startswith("__") and name.endswith("__"))
    ]
    for label, count in _parts(pool).items():
        print(f"attributes {label}: {count}")
    print(f"HashPool methods and properties (no dunders): {len(methods)}")
    print(f"HashPool bases: {[base.__name__ for base in HashPool.__mro__[1:-1]]}")
    pool.close()
    loopsafe.default_pool().close()


if __name__ == "__main__":
    main()
