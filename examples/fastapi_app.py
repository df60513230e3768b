"""A FastAPI app with signup and login whose password hashing never blocks the event loop.

Run it::

    uvicorn examples.fastapi_app:app --host 127.0.0.1 --port 8000

Environment:

- ``USE_LOOPSAFE=0`` hashes the way the FastAPI tutorial does (pwdlib's
  ``PasswordHash.recommended()`` called synchronously inside ``async def``),
  for comparison: every login then stalls the loop, and /health with it.
- ``LOOPSAFE_PROFILE=cheap`` uses cheap hash parameters (tests only).
- ``LOOPSAFE_MAX_QUEUE_WAIT`` is the pool's admission budget in seconds
  (default 1.0; ``none`` admits every call, as the benchmark does to compare
  like with like).
- ``LOOPSAFE_REQUEST_TIMEOUT`` is the seconds a login may take before it is
  answered 503 (default: none). Set it to your clients' or load balancer's
  timeout: a hash that could not finish in time is then never started.
- ``LOOPSAFE_HOST_LIMIT`` (``auto`` or an int) gives the workers of
  ``uvicorn --workers N`` or ``gunicorn -w N`` one hashing budget for the host.
- ``APP_DB`` is the SQLite file (default: an in-memory database per process).
- ``LOOPSAFE_CLIENT_KEYS=0`` turns client keys off (first come, first served,
  for the flood benchmark's baseline); by default each client's address is its
  key, so a flood from one address gets no more than its fair share.

SQLite calls take microseconds, but they are still blocking I/O: they run in
Starlette's thread pool (`run_in_threadpool`), never on the loop, and not on
loopsafe's pool either, whose admission control estimates waits from the
service time of *hashes*. Hashing runs on loopsafe's bounded pool; when it is
full, the request gets a 503 with ``Retry-After`` instead of queueing past the
client's patience.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field, SecretStr
from starlette.concurrency import run_in_threadpool

from loopsafe import PasswordHash, profiles
from loopsafe.starlette import EXCEPTION_HANDLERS, client_host, get_password_hash, lifespan

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USE_LOOPSAFE = os.environ.get("USE_LOOPSAFE", "1") != "0"
PROFILE = profiles.CHEAP if os.environ.get("LOOPSAFE_PROFILE") == "cheap" else profiles.DEFAULT
_WAIT = os.environ.get("LOOPSAFE_MAX_QUEUE_WAIT", "1.0")
MAX_QUEUE_WAIT = None if _WAIT.lower() == "none" else float(_WAIT)
CLIENT_KEYS = os.environ.get("LOOPSAFE_CLIENT_KEYS", "1") != "0"
REQUEST_TIMEOUT = float(os.environ.get("LOOPSAFE_REQUEST_TIMEOUT", "0")) or None


class Credentials(BaseModel):
    """A signup or login form. SecretStr keeps the password out of reprs and logs."""

    username: str = Field(min_length=1, max_length=150)
    password: SecretStr = Field(min_length=1, max_length=4096)


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


@asynccontextmanager
async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app's own startup and shutdown: the database."""
    users = Users(os.environ.get("APP_DB", ":memory:"))
    app.state.users = users
    try:
        yield
    finally:
        users.close()


def _users(app: FastAPI) -> Users:
    users: Users = app.state.users
    return users


if USE_LOOPSAFE:
    app = FastAPI(
        lifespan=lifespan(
            app_lifespan,
            password_hash=PasswordHash.recommended(profile=PROFILE),
            max_queue_wait=MAX_QUEUE_WAIT,
            # The default: request.client.host. Behind a proxy, see docs/fairness.md.
            client_key=client_host if CLIENT_KEYS else None,
        ),
        exception_handlers=dict(EXCEPTION_HANDLERS),  # Overloaded -> 503 + Retry-After
    )
    Hasher = Annotated[PasswordHash, Depends(get_password_hash)]

    @app.post("/signup", status_code=201)
    async def signup(form: Credentials, ph: Hasher) -> dict[str, Any]:
        """Create a user: the hash runs on loopsafe's pool."""
        encoded = await ph.ahash(form.password.get_secret_value())
        if not await run_in_threadpool(_users(app).add, form.username, encoded):
            raise HTTPException(409, "username taken")
        return {"username": form.username}

    @app.post("/login")
    async def login(form: Credentials, ph: Hasher) -> dict[str, Any]:
        """Check a password off the loop; an unknown user costs one dummy hash, off the loop too."""
        ph.check_admission()  # a full pool answers 503 before the database is asked
        users = _users(app)
        stored = await run_in_threadpool(users.get_hash, form.username)
        password = form.password.get_secret_value()
        try:
            if stored is None:
                await ph.averify_dummy(timeout=REQUEST_TIMEOUT)  # as long as a wrong password
                raise HTTPException(401, "invalid credentials")  # (Django ticket #20760)
            ok, new_hash = await ph.averify_and_update(password, stored, timeout=REQUEST_TIMEOUT)
        except TimeoutError:
            raise HTTPException(503, "login took too long; retry later") from None
        if not ok:
            raise HTTPException(401, "invalid credentials")
        if new_hash is not None:  # an older algorithm or cost: save the upgrade
            await run_in_threadpool(users.set_hash, form.username, new_hash)
        return {"username": form.username, "upgraded": new_hash is not None}

else:  # the FastAPI tutorial's way, for comparison: hashing blocks the loop
    from pwdlib import PasswordHash as PwdlibHash

    pwd = PwdlibHash.recommended()
    DUMMY_HASH = pwd.hash("dummypassword")  # the tutorial's timing-attack guard
    app = FastAPI(lifespan=app_lifespan)

    @app.post("/signup", status_code=201)
    async def signup(form: Credentials) -> dict[str, Any]:
        """Create a user, hashing on the event loop."""
        encoded = pwd.hash(form.password.get_secret_value())
        if not await run_in_threadpool(_users(app).add, form.username, encoded):
            raise HTTPException(409, "username taken")
        return {"username": form.username}

    @app.post("/login")
    async def login(form: Credentials) -> dict[str, Any]:
        """Check a password on the event loop."""
        users = _users(app)
        stored = await run_in_threadpool(users.get_hash, form.username)
        password = form.password.get_secret_value()
        if stored is None:
            pwd.verify(password, DUMMY_HASH)
            raise HTTPException(401, "invalid credentials")
        ok, new_hash = pwd.verify_and_update(password, stored)
        if not ok:
            raise HTTPException(401, "invalid credentials")
        if new_hash is not None:
            await run_in_threadpool(users.set_hash, form.username, new_hash)
        return {"username": form.username, "upgraded": new_hash is not None}


@app.get("/health")
async def health() -> dict[str, str]:
    """Answer at once: its latency is the loop's responsiveness."""
    return {"status": "ok"}
