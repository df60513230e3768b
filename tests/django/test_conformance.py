"""Django's row of the conformance table (tests/_conformance.py): every guarantee, for Django.

The test project's own app: loopsafe's ``ModelBackend`` and ``OverloadMiddleware``,
``/login/`` calling ``loopsafe.django.aauthenticate``, driven by Django's
``AsyncClient`` (the real ASGI handler, in this process). The client's key
comes from an ``X-Client`` header through ``LOOPSAFE["CLIENT_KEY"]``; the pool's
settings from ``LOOPSAFE["POOL"]``.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, override_settings

from _conformance import cells
from _keys import against_a_flood, shed_for_fair_share
from loopsafe import PoolSettings, default_pool
from loopsafe.django import checks
from loopsafe.hashers import _base as hasher_base

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
PBKDF2 = ["testproject.hashers.TestPBKDF2PasswordHasher"]
ARGON2 = ["testproject.hashers.MemoryArgon2PasswordHasher"]
HERE = Path(__file__).resolve().parent


def header_key(request):
    """The client key: the ``X-Client`` header (None: the shared key)."""
    return request.META.get("HTTP_X_CLIENT")


def loopsafe_with(pool: PoolSettings) -> dict[str, object]:
    """A LOOPSAFE dict with these pool settings and the header's client key."""
    return {"POOL": pool, "CLIENT_KEY": header_key}


@pytest.fixture(autouse=True)
def cold_process():
    """Each cell starts as a fresh server process would: no measured hash cost yet."""
    hasher_base._ESTIMATES.clear()


async def login(client: str | None = None, username: str = "ada"):
    """POST the login form; the response."""
    headers = {} if client is None else {"X-Client": client}
    return await AsyncClient().post(
        "/login/", {"username": username, "password": PASSWORD}, headers=headers
    )


async def burst(n: int) -> list[int]:
    """``n`` logins at once; their status codes."""
    responses = await asyncio.gather(*(login() for _ in range(n)))
    return [response.status_code for response in responses]


async def sampled(n: int) -> tuple[list[int], list[object]]:
    """``n`` logins at once while the pool's statistics are read every millisecond."""
    pool = default_pool()
    samples: list[object] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            samples.append(pool.statistics())
            await asyncio.sleep(0.001)

    sampler = asyncio.ensure_future(sample())
    try:
        statuses = await burst(n)
    finally:
        done.set()
        await sampler
    return statuses, samples


def start_up() -> None:
    """What Django runs when a server starts: loopsafe's ``ready()``."""
    apps.get_app_config("loopsafe").ready()


def test_every_cell_of_the_django_row_has_a_test():
    """Each applicable cell of Django's row is run by a test of this module."""
    for guarantee in cells("django"):
        assert f"test_django_{guarantee}" in globals(), guarantee


async def test_django_cold_burst_refused(make_user):
    """A freshly started Django refuses most of a burst it cannot serve in time, with 503s."""
    with override_settings(
        PASSWORD_HASHERS=PBKDF2,
        LOOPSAFE=loopsafe_with(PoolSettings(max_workers=1, max_queue_wait=0.1)),
    ):
        await sync_to_async(make_user)("ada", password=PASSWORD)
        default_pool().close()  # a fresh process: a pool that has answered nothing
        hasher_base._ESTIMATES.clear()
        start_up()
        statuses = await burst(24)
    assert statuses.count(503) >= 8, sorted(statuses)
    assert statuses.count(200) + statuses.count(503) == 24, sorted(statuses)


async def test_django_host_limit(make_user, tmp_path, monkeypatch):
    """With ``host_limit=1`` Django's pool runs one hash at a time, though it has 2 workers."""
    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(tmp_path))
    key = f"conformance-{uuid.uuid4().hex[:12]}"
    pool = PoolSettings(max_workers=2, max_queue_wait=None, host_limit=1, host_key=key)
    with override_settings(PASSWORD_HASHERS=PBKDF2, LOOPSAFE=loopsafe_with(pool)):
        await sync_to_async(make_user)("ada", password=PASSWORD)
        assert (default_pool().host_limit, default_pool().host_key) == (1, key)
        statuses, samples = await sampled(6)
    assert statuses == [200] * 6
    assert max(sample.host_held for sample in samples) == 1


async def test_django_max_memory(make_user):
    """Django declares each Argon2 hash's memory, and the pool keeps the sum within max_memory."""
    one = 4096 * 1024
    pool = PoolSettings(max_workers=2, max_queue_wait=None, max_memory=one)
    with override_settings(PASSWORD_HASHERS=ARGON2, LOOPSAFE=loopsafe_with(pool)):
        await sync_to_async(make_user)("ada", password=PASSWORD)
        statuses, samples = await sampled(6)
    assert statuses == [200] * 6
    in_use = [sample.memory_in_use for sample in samples]
    assert max(in_use) == one, "the hashes' memory never reached the pool"
    assert all(used <= one for used in in_use)


async def test_django_client_key(make_user):
    """The request's key reaches the pool: refused behind its own flood, served past another's."""
    pool = PoolSettings(max_workers=1, max_pending=2, max_queue_wait=None)
    with override_settings(PASSWORD_HASHERS=PBKDF2, LOOPSAFE=loopsafe_with(pool)):
        await sync_to_async(make_user)("ada", password=PASSWORD)
        own, outcomes = await against_a_flood(
            default_pool(), lambda: login("client-a"), flood_key="client-a"
        )
        assert own.status_code == 503
        assert outcomes == [None, None, None]
        other, outcomes = await against_a_flood(
            default_pool(), lambda: login("client-b"), flood_key="client-a"
        )
        assert other.status_code == 200
        assert shed_for_fair_share(outcomes)


async def test_django_overloaded_503(make_user, saturate):
    """A login the pool refuses is answered 503 with a whole-second Retry-After, at once."""
    pool = PoolSettings(max_workers=1, max_pending=1, max_queue_wait=None)
    with override_settings(PASSWORD_HASHERS=PBKDF2, LOOPSAFE=loopsafe_with(pool)):
        await sync_to_async(make_user)("ada", password=PASSWORD)
        async with saturate(default_pool()):
            response = await asyncio.wait_for(login(), 5)
    assert response.status_code == 503
    assert re.fullmatch(r"[1-9][0-9]*", response["Retry-After"])
    assert PASSWORD not in response.content.decode()


@pytest.mark.parametrize(
    ("raw", "keys"),
    [
        pytest.param({"MAX_QUEUE_WAIT": math.inf}, ["MAX_QUEUE_WAIT"], id="inf-wait"),
        pytest.param({"MAX_QUEUE_WAIT": math.nan}, ["MAX_QUEUE_WAIT"], id="nan-wait"),
        pytest.param({"MAX_WORKERS": True, "NICE": 99}, ["MAX_WORKERS", "NICE"], id="two-bad"),
        pytest.param({"MAX_MEMORY": 1.5}, ["MAX_MEMORY"], id="float-memory"),
        pytest.param({"POOL": {"max_workers": 2}}, ["POOL"], id="pool-not-settings"),
        pytest.param({"POOL": PoolSettings(), "NICE": 5}, ["POOL"], id="pool-and-a-key"),
    ],
)
def test_django_bad_settings_fail_at_start(raw, keys):
    """What the pool would refuse is a system-check error and fails start-up, naming each key."""
    # Set without the setting_changed signal, as settings.py would be: the check reads it.
    original = settings.LOOPSAFE
    settings.LOOPSAFE = raw
    try:
        errors = checks.check_settings_values()
    finally:
        settings.LOOPSAFE = original
    assert sorted({e.id for e in errors}) == ["loopsafe.E001"]
    for key in keys:
        assert any(f"LOOPSAFE[{key!r}]" in e.msg for e in errors), (key, errors)
    # Applying it (what ready() does at start-up) fails with one message naming each key.
    with pytest.raises(ImproperlyConfigured) as caught, override_settings(LOOPSAFE=raw):
        pass  # pragma: no cover - the override itself raises
    for key in keys:
        assert f"LOOPSAFE[{key!r}]" in str(caught.value)


def test_django_bad_settings_stop_a_fresh_process(tmp_path):
    """``django.setup()`` in a fresh interpreter with an inf MAX_QUEUE_WAIT exits naming the key."""
    (tmp_path / "bad_settings.py").write_text(
        textwrap.dedent(
            """
            from testproject.settings import *  # noqa: F403
            LOOPSAFE = {"MAX_QUEUE_WAIT": float("inf")}
            """
        )
    )
    root = HERE.parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bad_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(HERE), str(root / "src")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr
    assert "LOOPSAFE['MAX_QUEUE_WAIT']" in done.stderr
