"""Django for the tests in this folder only: the ``testproject`` settings, a SQLite test database.

Importing this conftest puts ``tests/django`` on ``sys.path``, points
``DJANGO_SETTINGS_MODULE`` at ``testproject.settings`` and runs
``django.setup()``; tests elsewhere never import Django settings. Without
Django installed, nothing here is collected.

Fixtures for every test in this folder:

- ``anyio_backend``: asyncio and uvloop only (Django's async ORM and
  ``asgiref`` need an asyncio loop; trio is covered by the core's tests);
- a session-wide test database (created with migrations, destroyed at the end);
- ``make_user``: a factory for ``auth.User`` rows with a given stored hash;
- ``clean_tables`` (autouse): deletes the users each test made;
- ``fresh_pool`` (autouse): each test starts with the default pool rebuilt
  from ``settings.LOOPSAFE`` and Django unpatched, whatever the test before did;
- ``saturate``: ``async with saturate(pool):`` fills a pool's workers and
  queue with calls that wait, so the next call is refused with ``Overloaded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

try:
    import django
except ImportError:  # pragma: no cover - Django is a test dependency
    collect_ignore_glob = ["*"]
else:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    django.setup()


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(
            ("asyncio", {"use_uvloop": True}),
            id="uvloop",
            marks=pytest.mark.skipif(sys.platform == "win32", reason="uvloop has no Windows build"),
        ),
    ]
)
def anyio_backend(request):
    """Run each async Django test on asyncio and uvloop (Django needs an asyncio loop)."""
    return request.param


@pytest.fixture(scope="session", autouse=True)
def django_test_database():
    """Create the SQLite test database once per session, with every migration applied."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    yield
    connection.creation.destroy_test_db(old_name, verbosity=0)
    teardown_test_environment()


@pytest.fixture(autouse=True)
def clean_tables():
    """Delete every user after each test, so usernames can repeat across tests."""
    yield
    from django.contrib.auth.models import User
    from django.db import close_old_connections
    from testproject.models import MixinUser

    User.objects.all().delete()
    MixinUser.objects.all().delete()
    close_old_connections()


@pytest.fixture(autouse=True)
def fresh_pool():
    """Start from the settings' pool and an unpatched Django; undo what the test changed."""
    import loopsafe
    from loopsafe.django import _patch, conf

    def reset():
        _patch.unpatch()
        loopsafe.default_pool().close()  # the next default_pool() call makes a new one
        conf.apply(conf.get_settings(), reconcile_pool=True)

    reset()
    yield loopsafe.default_pool()
    reset()


@pytest.fixture
def make_user():
    """Return ``make(username, *, password=None, encoded=None, **fields)`` -> a saved auth.User.

    ``password`` is hashed with the configured hasher; ``encoded`` stores a
    ready-made hash instead. It is synchronous: from an async test, call it
    through ``asgiref.sync.sync_to_async``.
    """
    from django.contrib.auth.models import User

    def make(username, *, password=None, encoded=None, **fields):
        user = User(username=username, **fields)
        if encoded is not None:
            user.password = encoded
        else:
            user.set_password(password)
        user.save()
        return user

    return make


@pytest.fixture
def saturate():
    """Return an async context manager that keeps a pool full until the block ends."""

    @contextlib.asynccontextmanager
    async def full(pool):
        gate = threading.Event()
        waiting = []

        async def until(condition):
            for _ in range(2000):
                if condition(pool.statistics()):
                    return
                await asyncio.sleep(0.005)
            raise AssertionError(f"the pool never filled: {pool.statistics()}")

        try:
            for _ in range(pool.max_workers):
                waiting.append(asyncio.ensure_future(pool.run(gate.wait, 30)))
            await until(lambda stats: stats.running == pool.max_workers)
            for _ in range(pool.max_pending):
                waiting.append(asyncio.ensure_future(pool.run(gate.wait, 30)))
            await until(lambda stats: stats.queued == pool.max_pending)
            yield pool
        finally:
            gate.set()
            await asyncio.gather(*waiting, return_exceptions=True)

    return full
