"""A Litestar app on advanced-alchemy and SQLite whose password hashing never blocks the loop.

Run it::

    uvicorn examples.litestar_app:app --host 127.0.0.1 --port 8000

Endpoints: ``POST /register`` and ``POST /login`` (JSON ``{"username", "password"}``),
``GET /health``.

Environment:

- ``USE_LOOPSAFE=0`` hashes the way Litestar apps commonly do, for comparison:
  advanced-alchemy's ``Argon2Hasher`` column (hashing inside the flush, on the
  loop) and login through ``run_in_executor(None, ...)``, the shared default
  executor with no bound and no shedding (litestar-fullstack's ``crypt.py``).
  Both modes use Argon2id at Django 6.1's defaults (t=2, 100 MiB, p=8).
- ``LOOPSAFE_PROFILE=cheap`` uses cheap hash parameters (tests only).
- ``LOOPSAFE_MAX_QUEUE_WAIT`` is the pool's admission budget in seconds
  (default 1.0; ``none`` admits every call, to compare like with like).
- ``APP_DB`` is an SQLite file (default: one in-memory database).

With loopsafe, `LoopsafePlugin` owns the pool and answers `Overloaded` with
503 + ``Retry-After``; `LoopsafeHasher` is advanced-alchemy's column backend
that hashes on that pool.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from advanced_alchemy.types import PasswordHash as PasswordHashColumn
from advanced_alchemy.types.password_hash.argon2 import Argon2Hasher
from litestar import Litestar, get, post
from litestar.datastructures import State  # noqa: TC002 - Litestar reads annotations at runtime
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.params import JSONBody  # noqa: TC002 - Litestar reads annotations at runtime
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

from loopsafe import PasswordHash, profiles
from loopsafe.advanced_alchemy import LoopsafeHasher
from loopsafe.litestar import LoopsafePlugin

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from advanced_alchemy.types.password_hash.base import HashingBackend

USE_LOOPSAFE = os.environ.get("USE_LOOPSAFE", "1") != "0"
CHEAP = os.environ.get("LOOPSAFE_PROFILE") == "cheap"
_WAIT = os.environ.get("LOOPSAFE_MAX_QUEUE_WAIT", "1.0")
MAX_QUEUE_WAIT = None if _WAIT.lower() == "none" else float(_WAIT)

if USE_LOOPSAFE:
    password_hash = PasswordHash.recommended(profile=profiles.CHEAP if CHEAP else profiles.DEFAULT)
    hasher = LoopsafeHasher(password_hash)
    backend: HashingBackend = hasher
elif CHEAP:
    backend = Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1)
else:  # Django 6.1's Argon2 defaults, the same work loopsafe does
    backend = Argon2Hasher(time_cost=2, memory_cost=102_400, parallelism=8)


class Base(DeclarativeBase):
    """The example's tables."""


class User(Base):
    """A user; the column type hashes what is assigned to ``password``."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    password: Mapped[Any] = mapped_column(PasswordHashColumn(backend=backend))


class Credentials(msgspec.Struct):
    """A register or login form."""

    username: Annotated[str, msgspec.Meta(min_length=1, max_length=150)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]

    def __repr__(self) -> str:
        """Never show the password."""
        return f"Credentials(username={self.username!r})"


@asynccontextmanager
async def database(app: Litestar) -> AsyncIterator[None]:
    """The app's own startup and shutdown: an async SQLite engine (aiosqlite)."""
    path = os.environ.get("APP_DB")
    if path:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    else:  # one in-memory database shared by every session
        engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        yield
    finally:
        await engine.dispose()


async def provide_session(state: State) -> AsyncIterator[AsyncSession]:
    """One session per request."""
    async with state.sessions() as session:
        yield session


async def find(session: AsyncSession, username: str) -> User | None:
    """Return the user called ``username``, or None."""
    found: User | None = await session.scalar(select(User).where(User.username == username))
    return found


if USE_LOOPSAFE:

    @post("/register", status_code=201)
    async def register(
        data: JSONBody[Credentials], session: NamedDependency[AsyncSession]
    ) -> dict[str, str]:
        """Hash on the pool first (a full pool answers 503 here); the flush only stores."""
        if await find(session, data.username) is not None:
            raise HTTPException(status_code=409, detail="username taken")
        session.add(User(username=data.username, password=await hasher.ahash(data.password)))
        await session.commit()
        return {"username": data.username}

    @post("/login", status_code=200)
    async def login(
        data: JSONBody[Credentials], session: NamedDependency[AsyncSession]
    ) -> dict[str, Any]:
        """Verify on the pool; an unknown user costs one hash there too; upgrades are saved."""
        password_hash.pool.check_admission()  # a full pool answers 503 before the database
        user = await find(session, data.username)
        ok, new_hash = await hasher.averify_and_update(
            data.password, None if user is None else user.password
        )
        if user is None or not ok:
            raise HTTPException(status_code=401, detail="invalid credentials")
        if new_hash is not None:  # an older algorithm or cost: save the upgrade
            user.password = new_hash
            await session.commit()
        return {"username": data.username, "upgraded": new_hash is not None}

    plugins = [LoopsafePlugin(password_hash=password_hash, max_queue_wait=MAX_QUEUE_WAIT)]

else:  # the common way, for comparison
    DUMMY_HASH = backend.hash("dummy password")  # for unknown users, as litestar-fullstack does

    @post("/register", status_code=201)
    async def register(
        data: JSONBody[Credentials], session: NamedDependency[AsyncSession]
    ) -> dict[str, str]:
        """Assign the password; the column hashes it inside the flush, on the loop."""
        if await find(session, data.username) is not None:
            raise HTTPException(status_code=409, detail="username taken")
        session.add(User(username=data.username, password=data.password))
        await session.commit()
        return {"username": data.username}

    @post("/login", status_code=200)
    async def login(
        data: JSONBody[Credentials], session: NamedDependency[AsyncSession]
    ) -> dict[str, Any]:
        """Verify on the shared default executor: off the loop, unbounded, never refused."""
        user = await find(session, data.username)
        stored = DUMMY_HASH if user is None else user.password.hash_string
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, backend.verify, data.password, stored)
        if user is None or not ok:
            raise HTTPException(status_code=401, detail="invalid credentials")
        return {"username": data.username, "upgraded": False}

    plugins = []


@get("/health")
async def health() -> dict[str, str]:
    """Answer at once: its latency is the loop's responsiveness."""
    return {"status": "ok"}


app = Litestar(
    [register, login, health],
    dependencies={"session": Provide(provide_session)},
    lifespan=[database],
    plugins=plugins,
)
