"""An aiohttp app with register and login whose password hashing never blocks the loop.

Run it::

    python examples/aiohttp_app.py --port 8000

Endpoints: ``POST /register`` and ``POST /login`` (JSON ``{"username", "password"}``),
``GET /health``.

Environment:

- ``USE_LOOPSAFE=0`` hashes the way aiohttp apps commonly do (aiohttp-security's
  ``db_auth`` example calls passlib's ``verify`` inside ``async def``): pwdlib's
  Argon2 hasher called synchronously in the handler, for comparison. Both
  modes use Argon2id at Django 6.1's defaults (t=2, 100 MiB, p=8).
- ``LOOPSAFE_PROFILE=cheap`` uses cheap hash parameters (tests only).
- ``LOOPSAFE_MAX_QUEUE_WAIT`` is the pool's admission budget in seconds
  (default 1.0; ``none`` admits every call, to compare like with like).
- ``APP_DB`` is an SQLite file (default: an in-memory database).

SQLite calls are blocking I/O, so they run in the loop's default executor,
never on loopsafe's pool, whose admission control estimates waits from the
service time of hashes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from aiohttp import web

import loopsafe.aiohttp
from loopsafe import PasswordHash, profiles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USE_LOOPSAFE = os.environ.get("USE_LOOPSAFE", "1") != "0"
CHEAP = os.environ.get("LOOPSAFE_PROFILE") == "cheap"
_WAIT = os.environ.get("LOOPSAFE_MAX_QUEUE_WAIT", "1.0")
MAX_QUEUE_WAIT = None if _WAIT.lower() == "none" else float(_WAIT)
MAX_PASSWORD = 4096


class Users:
    """A SQLite user table; every method blocks, so callers run it in a thread."""

    def __init__(self, path: str) -> None:
        """Open (and create) the table; one connection shared under a lock."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, hash TEXT NOT NULL)"
            )

    def get_hash(self, username: str) -> str | None:
        """Return the stored hash of ``username``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT hash FROM users WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else str(row[0])

    def add(self, username: str, encoded: str) -> bool:
        """Insert a user; False if the name is taken."""
        try:
            with self._lock, self._db:
                self._db.execute("INSERT INTO users VALUES (?, ?)", (username, encoded))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_hash(self, username: str, encoded: str) -> None:
        """Save an upgraded hash."""
        with self._lock, self._db:
            self._db.execute("UPDATE users SET hash = ? WHERE username = ?", (encoded, username))

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


USERS = web.AppKey("users", Users)


async def database(app: web.Application) -> AsyncIterator[None]:
    """The app's own startup and cleanup: the database."""
    users = Users(os.environ.get("APP_DB", ":memory:"))
    app[USERS] = users
    yield
    users.close()


async def blocking(fn: Any, *args: Any) -> Any:  # noqa: ANN401 - a thin executor shim
    """Run a blocking database call in the loop's default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def credentials(request: web.Request) -> tuple[str, str]:
    """Read and check ``{"username", "password"}``; 400 for anything else."""
    try:
        form = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="expected JSON") from None
    username = form.get("username") if isinstance(form, dict) else None
    password = form.get("password") if isinstance(form, dict) else None
    if not isinstance(username, str) or not 0 < len(username) <= 150:  # noqa: PLR2004
        raise web.HTTPBadRequest(text="username: 1 to 150 characters")
    if not isinstance(password, str) or not 0 < len(password) <= MAX_PASSWORD:
        raise web.HTTPBadRequest(text=f"password: 1 to {MAX_PASSWORD} characters")
    return username, password


async def health(_request: web.Request) -> web.Response:
    """Answer at once: its latency is the loop's responsiveness."""
    return web.json_response({"status": "ok"})


async def register_loopsafe(request: web.Request) -> web.Response:
    """Hash on loopsafe's pool; a full pool answers 503 through the middleware."""
    username, password = await credentials(request)
    encoded = await loopsafe.aiohttp.get_password_hash(request).ahash(password)
    if not await blocking(request.app[USERS].add, username, encoded):
        raise web.HTTPConflict(text="username taken")
    return web.json_response({"username": username}, status=201)


async def login_loopsafe(request: web.Request) -> web.Response:
    """Verify off the loop; an unknown user costs one dummy hash, off the loop too."""
    username, password = await credentials(request)
    ph = loopsafe.aiohttp.get_password_hash(request)
    ph.pool.check_admission()  # a full pool answers 503 before the database is asked
    users = request.app[USERS]
    stored = await blocking(users.get_hash, username)
    ok, new_hash = await ph.averify_and_update(password, stored)  # None: a dummy hash
    if stored is None or not ok:
        raise web.HTTPUnauthorized(text="invalid credentials")
    if new_hash is not None:  # an older algorithm or cost: save the upgrade
        await blocking(users.set_hash, username, new_hash)
    return web.json_response({"username": username, "upgraded": new_hash is not None})


def make_pwdlib_handlers() -> tuple[Any, Any]:
    """The common way, for comparison: pwdlib's Argon2 called inside ``async def``."""
    from pwdlib import PasswordHash as PwdlibHash  # noqa: PLC0415 - comparison mode only
    from pwdlib.hashers.argon2 import Argon2Hasher  # noqa: PLC0415

    if CHEAP:
        pwd = PwdlibHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))
    else:  # Django 6.1's Argon2 defaults, the same work loopsafe does
        pwd = PwdlibHash((Argon2Hasher(time_cost=2, memory_cost=102_400, parallelism=8),))
    dummy = pwd.hash("dummy password")

    async def register(request: web.Request) -> web.Response:
        username, password = await credentials(request)
        encoded = pwd.hash(password)  # on the loop
        if not await blocking(request.app[USERS].add, username, encoded):
            raise web.HTTPConflict(text="username taken")
        return web.json_response({"username": username}, status=201)

    async def login(request: web.Request) -> web.Response:
        username, password = await credentials(request)
        stored = await blocking(request.app[USERS].get_hash, username)
        ok = pwd.verify(password, dummy if stored is None else stored)  # on the loop
        if stored is None or not ok:
            raise web.HTTPUnauthorized(text="invalid credentials")
        return web.json_response({"username": username, "upgraded": False})

    return register, login


def make_app() -> web.Application:
    """Build the app for the mode the environment asks for."""
    app = web.Application()
    app.cleanup_ctx.append(database)
    if USE_LOOPSAFE:
        profile = profiles.CHEAP if CHEAP else profiles.DEFAULT
        loopsafe.aiohttp.setup(
            app,
            password_hash=PasswordHash.recommended(profile=profile),
            max_queue_wait=MAX_QUEUE_WAIT,
        )
        register, login = register_loopsafe, login_loopsafe
    else:
        register, login = make_pwdlib_handlers()
    app.router.add_post("/register", register)
    app.router.add_post("/login", login)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    """Serve on 127.0.0.1 with aiohttp's own runner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
