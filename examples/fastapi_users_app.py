"""A fastapi-users app (SQLAlchemy + aiosqlite, JWT) whose password hashing never blocks the loop.

Run it::

    uvicorn examples.fastapi_users_app:app --host 127.0.0.1 --port 8000

It is fastapi-users' own full example, with three changes for loopsafe: the
``UserManager`` inherits `loopsafe.fastapi_users.PoolPasswordManagerMixin`
instead of ``BaseUserManager``, it is given a loopsafe ``PasswordHelper``
bound to the requesting client (``password_helper.for_client(request_key(request))``,
so a flood from one address gets no more than its fair share of the pool), and
the app gets ``loopsafe.starlette``'s lifespan and exception handlers (a full
pool answers 503 with ``Retry-After``). Routes: fastapi-users' ``/auth/register``,
``/auth/jwt/login``, ``/auth/forgot-password``, ``/auth/reset-password`` and
``/users/me``, plus ``/health``.

Environment:

- ``USE_LOOPSAFE=0`` is stock fastapi-users, for comparison: ``BaseUserManager``
  and its pwdlib ``PasswordHelper``, here at the same Argon2 costs as loopsafe
  (Django 6.1's: t=2, m=100 MiB, p=8), hashing on the event loop.
- ``LOOPSAFE_PROFILE=cheap`` uses cheap hash parameters (tests only).
- ``LOOPSAFE_MAX_QUEUE_WAIT`` is the pool's admission budget in seconds
  (default 1.0; ``none`` admits every call, as the benchmark does to compare
  like with like).
- ``APP_DB`` is the SQLite file (default: an in-memory database per process).
- ``LOOPSAFE_CLIENT_KEYS=0`` turns client keys off (first come, first served);
  by default each client's address (``request.client.host``) is its key.
"""

from __future__ import annotations

import os
import secrets
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper as StockPasswordHelper
from pwdlib import PasswordHash as PwdlibHash
from pwdlib.hashers.argon2 import Argon2Hasher as PwdlibArgon2
from pwdlib.hashers.bcrypt import BcryptHasher as PwdlibBcrypt
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import StaticPool

from loopsafe import PasswordHash, profiles
from loopsafe.fastapi_users import PasswordHelper, PoolPasswordManagerMixin
from loopsafe.starlette import EXCEPTION_HANDLERS, client_host, lifespan, request_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

USE_LOOPSAFE = os.environ.get("USE_LOOPSAFE", "1") != "0"
PROFILE = profiles.CHEAP if os.environ.get("LOOPSAFE_PROFILE") == "cheap" else profiles.DEFAULT
_WAIT = os.environ.get("LOOPSAFE_MAX_QUEUE_WAIT", "1.0")
MAX_QUEUE_WAIT = None if _WAIT.lower() == "none" else float(_WAIT)
CLIENT_KEYS = os.environ.get("LOOPSAFE_CLIENT_KEYS", "1") != "0"
SECRET = os.environ.get("APP_SECRET") or secrets.token_urlsafe(32)
_DB = os.environ.get("APP_DB")


class Base(DeclarativeBase):
    """SQLAlchemy's declarative base."""


class User(SQLAlchemyBaseUserTableUUID, Base):
    """fastapi-users' user table (id, email, hashed_password, flags)."""


class UserRead(schemas.BaseUser[uuid.UUID]):
    """What the API returns for a user."""


class UserCreate(schemas.BaseUserCreate):
    """The registration form."""


class UserUpdate(schemas.BaseUserUpdate):
    """The ``PATCH /users/me`` form."""


if _DB:
    engine = create_async_engine(f"sqlite+aiosqlite:///{_DB}")
else:  # one in-memory database shared by every session of this process
    engine = create_async_engine(
        "sqlite+aiosqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_user_db() -> AsyncIterator[SQLAlchemyUserDatabase[User, uuid.UUID]]:
    """fastapi-users' database adapter on one session per request."""
    async with session_maker() as session:
        yield SQLAlchemyUserDatabase(session, User)


#: Tokens from forgot_password, by e-mail (a real app sends them by mail).
RESET_TOKENS: dict[str, str] = {}


class _Hooks:
    """What this app adds to fastapi-users' manager, shared by both variants."""

    reset_password_token_secret = SECRET
    verification_token_secret = SECRET

    async def on_after_forgot_password(
        self,
        user: User,
        token: str,
        request: Request | None = None,  # noqa: ARG002 - fastapi-users' signature
    ) -> None:
        """Keep the token where the tests can read it."""
        RESET_TOKENS[user.email] = token


if USE_LOOPSAFE:
    # Built at import, so a missing argon2-cffi or a bad parameter stops the
    # server from starting instead of failing the first login.
    password_helper: Any = PasswordHelper(PasswordHash.recommended(profile=PROFILE))

    class UserManager(_Hooks, UUIDIDMixin, PoolPasswordManagerMixin[User, uuid.UUID]):
        """Every hash and verification on loopsafe's pool."""

else:
    argon2 = PROFILE.hasher("argon2").params  # the same costs for both variants
    password_helper = StockPasswordHelper(
        PwdlibHash(
            (
                PwdlibArgon2(
                    time_cost=argon2["time_cost"],
                    memory_cost=argon2["memory_cost"],
                    parallelism=argon2["parallelism"],
                ),
                PwdlibBcrypt(),
            )
        )
    )

    class UserManager(_Hooks, UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
        """Stock fastapi-users: every hash on the event loop."""


async def get_user_manager(
    request: Request,
    user_db: SQLAlchemyUserDatabase[User, uuid.UUID] = Depends(get_user_db),  # noqa: B008 - FastAPI's idiom
) -> AsyncIterator[UserManager]:
    """One manager per request; with loopsafe, its hashing carries the client's key."""
    helper = password_helper
    if isinstance(helper, PasswordHelper):
        # Bound to the key the lifespan's client_key picks (default request.client.host).
        helper = helper.for_client(request_key(request))
    yield UserManager(user_db, helper)


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    """Stateless JWT access tokens."""
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(
    name="jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=get_jwt_strategy
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])


@asynccontextmanager
async def create_tables(_app: FastAPI) -> AsyncIterator[None]:
    """Create the user table at start-up."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield
    await engine.dispose()


if USE_LOOPSAFE:
    app = FastAPI(
        lifespan=lifespan(
            create_tables,
            max_queue_wait=MAX_QUEUE_WAIT,
            # The default: request.client.host. Behind a proxy, see docs/fairness.md.
            client_key=client_host if CLIENT_KEYS else None,
        ),
        exception_handlers=EXCEPTION_HANDLERS,
    )
else:
    app = FastAPI(lifespan=create_tables)

app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt")
app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth")
app.include_router(fastapi_users.get_reset_password_router(), prefix="/auth")
app.include_router(fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users")


@app.get("/health")
async def health() -> dict[str, Any]:
    """Answer at once: the probe that shows whether the loop is free."""
    return {"ok": True}
