"""loopsafe.advanced_alchemy: the column backend on a real SQLite database (aiosqlite)."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from typing import Any

import anyio
import pytest
from advanced_alchemy.types import PasswordHash as PasswordHashColumn
from advanced_alchemy.types.password_hash.argon2 import Argon2Hasher as AAArgon2Hasher
from advanced_alchemy.types.password_hash.base import HashedPassword
from sqlalchemy import create_engine, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from loopsafe import HashPool, Overloaded, PasswordHash, PBKDF2Hasher, profiles
from loopsafe.advanced_alchemy import Hashed, LoopsafeHasher
from loopsafe.testing import assert_loop_responsive

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"


@pytest.fixture
def anyio_backend():
    """aiosqlite and SQLAlchemy's AsyncSession run on asyncio."""
    return "asyncio"


def make_model(backend: Any) -> tuple[type[DeclarativeBase], type[Any]]:
    """A fresh declarative base with one User table whose password column uses ``backend``."""

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        password: Mapped[Any] = mapped_column(PasswordHashColumn(backend=backend), nullable=True)

    return Base, User


@pytest.fixture
def hasher(pool):
    """A backend with cheap parameters on the test's private pool."""
    return LoopsafeHasher(PasswordHash.recommended(profile=profiles.CHEAP, pool=pool))


@pytest.fixture
async def database(tmp_path, hasher):
    """A real SQLite file through aiosqlite, with the User table; yields (sessions, User)."""
    base, user = make_model(hasher)
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    async with engine.begin() as connection:
        await connection.run_sync(base.metadata.create_all)
    yield async_sessionmaker(engine, expire_on_commit=False), user
    await engine.dispose()


async def stored(sessions, user_cls, user_id: int = 1) -> str:
    """Read the raw string stored in the password column."""
    async with sessions() as session:
        user = await session.scalar(select(user_cls).where(user_cls.id == user_id))
    assert isinstance(user.password, HashedPassword)
    return user.password.hash_string


class TestAsyncSession:
    """The column on an AsyncSession: where the hashing happens."""

    async def test_ahash_is_stored_without_hashing_again(self, database, hasher, pool):
        """A Hashed from ahash is stored as it is: one hash, on the pool, before the flush."""
        sessions, user_cls = database
        encoded = await hasher.ahash(PASSWORD)
        assert isinstance(encoded, Hashed)
        assert pool.statistics().completed == 1
        async with sessions() as session:
            session.add(user_cls(id=1, password=encoded))
            await session.commit()
        assert pool.statistics().completed == 1
        assert await stored(sessions, user_cls) == encoded
        assert encoded.startswith("argon2$argon2id$")

    async def test_plain_password_in_a_flush_is_hashed_on_the_pool(self, database, hasher, pool):
        """A plain password assigned to the column is hashed on the pool during the flush."""
        sessions, user_cls = database
        async with sessions() as session:
            session.add(user_cls(id=1, password=PASSWORD))
            await session.commit()
        assert pool.statistics().completed == 1
        encoded = await stored(sessions, user_cls)
        assert encoded.startswith("argon2$")
        assert await hasher.averify(PASSWORD, encoded)

    async def test_flush_keeps_the_loop_responsive(self, tmp_path):
        """With Argon2 at Django's defaults, a flush of 4 plain passwords never blocks the loop."""
        backend = LoopsafeHasher(PasswordHash.recommended(pool=HashPool(2)))
        base, user_cls = make_model(backend)
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'real.sqlite3'}")
        try:
            async with engine.begin() as connection:
                await connection.run_sync(base.metadata.create_all)
            sessions = async_sessionmaker(engine)
            # Bound: 0.4 s, as for the FastAPI example: one hash on the loop is
            # ~0.2 s here and four in a flush ~0.8 s; off the loop, p=8 lane
            # threads on 2 shared cores still delay the loop by scheduling.
            async with assert_loop_responsive(0.4), sessions() as session:
                session.add_all([user_cls(id=i, password=f"{PASSWORD}{i}") for i in range(4)])
                await session.commit()
            assert backend.password_hash.pool.statistics().completed == 4
        finally:
            await engine.dispose()
            backend.password_hash.pool.close()

    async def test_sync_calls_on_the_loop_thread_are_refused(self, database, hasher):
        """HashedPassword.verify in an async def raises, naming the await to use instead."""
        sessions, user_cls = database
        async with sessions() as session:
            session.add(user_cls(id=1, password=await hasher.ahash(PASSWORD)))
            await session.commit()
            user = await session.scalar(select(user_cls))
        with pytest.raises(RuntimeError, match=r"await hasher\.averify"):
            user.password.verify(PASSWORD)
        with pytest.raises(RuntimeError, match=r"await hasher\.ahash"):
            hasher.hash(PASSWORD)

    async def test_averify_and_update(self, database, hasher):
        """averify takes the column's HashedPassword; a wrong password and None are False."""
        sessions, user_cls = database
        async with sessions() as session:
            session.add(user_cls(id=1, password=await hasher.ahash(PASSWORD)))
            await session.commit()
            user = await session.scalar(select(user_cls))
        assert await hasher.averify(PASSWORD, user.password)
        assert not await hasher.averify("wrong", user.password)
        assert not await hasher.averify(PASSWORD, None)  # an unknown user: one dummy hash
        assert await hasher.averify_and_update(PASSWORD, user.password) == (True, None)
        assert await hasher.averify_and_update("wrong", user.password) == (False, None)

    async def test_advanced_alchemy_argon2_hashes_are_upgraded(self, tmp_path, hasher):
        """A table written by advanced-alchemy's own Argon2Hasher verifies and is upgraded."""
        old_base, old_user = make_model(AAArgon2Hasher(time_cost=1, memory_cost=8, parallelism=1))
        path = tmp_path / "old.sqlite3"
        with Session(create_engine(f"sqlite:///{path}")) as session:  # the old app, sync
            old_base.metadata.create_all(session.get_bind())
            session.add(old_user(id=1, password=PASSWORD))
            session.commit()
        _, user_cls = make_model(hasher)
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            async with sessions() as session:
                user = await session.scalar(select(user_cls))
                assert user.password.hash_string.startswith("$argon2id$")
                assert hasher.needs_rehash(user.password.hash_string)
                ok, new_hash = await hasher.averify_and_update(PASSWORD, user.password)
                assert ok
                assert isinstance(new_hash, Hashed)
                user.password = new_hash
                await session.commit()
            upgraded = await stored(sessions, user_cls)
        finally:
            await engine.dispose()
        assert upgraded == new_hash
        assert upgraded.startswith("argon2$argon2id$")
        assert not hasher.needs_rehash(upgraded)

    async def test_overloaded_in_ahash_reaches_the_handler(self, database):
        """A full pool refuses ahash with Overloaded (503), before anything is flushed."""
        busy = LoopsafeHasher(
            PasswordHash.recommended(profile=profiles.CHEAP, pool=HashPool(1, max_queue_wait=0.001))
        )
        release = threading.Event()
        try:
            async with anyio.create_task_group() as tg:
                await busy.password_hash.pool.run(time.sleep, 0.01)
                tg.start_soon(busy.password_hash.pool.run, release.wait, 30)
                with anyio.fail_after(10):
                    while busy.password_hash.pool.statistics().running < 1:
                        await anyio.sleep(0.005)
                with pytest.raises(Overloaded):
                    await busy.ahash(PASSWORD)
                # In a flush, SQLAlchemy wraps it: why ahash-first is the pattern.
                _, user_cls = make_model(busy)
                sessions, _ = database
                async with sessions() as session:
                    session.add(user_cls(id=1, password=PASSWORD))
                    with pytest.raises(StatementError) as caught:
                        await session.commit()
                assert isinstance(caught.value.orig, Overloaded)
                release.set()
        finally:
            busy.password_hash.pool.close()


class TestSyncSession:
    """The column on a plain Session, on a thread with no event loop."""

    def test_hashes_and_verifies_inline(self, tmp_path, hasher, pool):
        """Without an event loop the backend works inline, as advanced-alchemy's own do."""
        base, user_cls = make_model(hasher)
        with Session(create_engine(f"sqlite:///{tmp_path / 'sync.sqlite3'}")) as session:
            base.metadata.create_all(session.get_bind())
            session.add(user_cls(id=1, password=PASSWORD))
            session.commit()
            user = session.scalar(select(user_cls))
            assert user.password.verify(PASSWORD)
            assert not user.password.verify("wrong")
            assert user.password.verify_and_update(PASSWORD) == (True, None)
        assert pool.statistics().admitted == 0


class TestBackend:
    """The HashingBackend protocol and bad input."""

    @pytest.mark.parametrize(
        ("encoded", "expected"),
        [
            pytest.param("argon2", False, id="current"),
            pytest.param("pbkdf2", True, id="other-algorithm"),
            pytest.param("not a hash", False, id="unreadable"),
            pytest.param("", False, id="empty"),
        ],
    )
    def test_needs_rehash(self, hasher, encoded, expected):
        """needs_rehash: another algorithm yes; current no; unreadable False, never raises."""
        if encoded == "argon2":
            encoded = hasher.password_hash.hash(PASSWORD)
        elif encoded == "pbkdf2":
            encoded = PBKDF2Hasher(iterations=1000).hash(PASSWORD)
        assert hasher.needs_rehash(encoded) is expected

    def test_compare_expression_is_unsupported(self, hasher):
        """No SQL-side comparison, as advanced-alchemy's own backends."""
        with pytest.raises(NotImplementedError):
            hasher.compare_expression(None, PASSWORD)  # type: ignore[arg-type]

    def test_bad_arguments(self, hasher):
        """A wrong password_hash or hash type raises TypeError; the repr shows no password."""
        with pytest.raises(TypeError, match="loopsafe PasswordHash"):
            LoopsafeHasher(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="HashedPassword"):
            anyio.run(hasher.averify, PASSWORD, 42)
        assert PASSWORD not in repr(hasher)

    def test_missing_advanced_alchemy_names_the_extra(self, monkeypatch):
        """Importing loopsafe.advanced_alchemy without it says which extra to install."""
        for name in list(sys.modules):
            if name == "advanced_alchemy" or name.startswith("advanced_alchemy."):
                monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, "loopsafe.advanced_alchemy", raising=False)
        with pytest.raises(ImportError, match=r"pip install 'loopsafe\[advanced-alchemy\]'"):
            importlib.import_module("loopsafe.advanced_alchemy")
