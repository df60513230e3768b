"""``PATCH_AUTH``: what is patched per Django version, idempotence, reversal, and the effect."""

from __future__ import annotations

import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib import auth
from django.contrib.auth import backends, hashers
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils.version import get_complete_version
from testproject.hashers import ITERATIONS, iterations_of, old_hash

import loopsafe
from loopsafe.django import _patch

DJANGO_VERSION = get_complete_version()

HAS_ASYNC_AUTH = hasattr(hashers, "acheck_password")
HELPER = "acheck_password_with_timing_attack_mitigation"

#: What Django has where; the attributes patch() may replace.
ATTRIBUTES = [
    (hashers, "acheck_password"),
    (AbstractBaseUser, "acheck_password"),
    (backends.ModelBackend, "aauthenticate"),
    (auth, HELPER),
    (backends, HELPER),
]


def snapshot():
    """The current value of every attribute patch() may touch (None where absent)."""
    return {(owner, name): vars(owner).get(name) for owner, name in ATTRIBUTES}


def expected_names():
    """What patch() must list on the installed Django, read from its features."""
    if not HAS_ASYNC_AUTH:
        return set()
    names = {
        "django.contrib.auth.hashers.acheck_password",
        "django.contrib.auth.base_user.AbstractBaseUser.acheck_password",
    }
    if hasattr(auth, HELPER):
        names |= {f"django.contrib.auth.{HELPER}", f"django.contrib.auth.backends.{HELPER}"}
    else:
        names.add("django.contrib.auth.backends.ModelBackend.aauthenticate")
    return names


def test_patch_lists_what_this_django_version_needs():
    """patch() replaces exactly the async paths that hash on the loop in this Django version."""
    patched = set(_patch.patch())
    assert patched == expected_names()
    assert set(_patch.patched()) == patched
    if DJANGO_VERSION >= (6, 0):
        assert "django.contrib.auth.backends.ModelBackend.aauthenticate" not in patched
    if DJANGO_VERSION < (5, 0):
        assert patched == set()


def test_patch_is_idempotent_and_unpatch_restores_django():
    """patch() twice changes nothing more; unpatch() (twice) puts Django's functions back."""
    original = snapshot()
    first = _patch.patch()
    after_first = snapshot()
    assert _patch.patch() == first
    assert snapshot() == after_first
    if HAS_ASYNC_AUTH:
        assert after_first != original
    _patch.unpatch()
    assert snapshot() == original
    _patch.unpatch()
    assert snapshot() == original
    assert _patch.patched() == ()


def test_unpatch_leaves_a_later_replacement_alone(monkeypatch):
    """An attribute replaced after patch() (by a test's mock) is not clobbered by unpatch()."""
    if not HAS_ASYNC_AUTH:
        pytest.skip("Django 4.2 has nothing to patch")
    djangos = hashers.acheck_password
    _patch.patch()

    async def mocked(*args, **kwargs):
        return True

    hashers.acheck_password = mocked
    try:
        _patch.unpatch()
        assert hashers.acheck_password is mocked
    finally:
        # Django's own function back: the mock must not outlive this test.
        hashers.acheck_password = djangos
        monkeypatch.undo()


def test_original_returns_djangos_function_while_patched():
    """original() gives Django's function whether or not the patch is on."""
    before = vars(AbstractBaseUser).get("acheck_password")
    _patch.patch()
    assert _patch.original(AbstractBaseUser, "acheck_password") is before
    _patch.unpatch()
    assert _patch.original(AbstractBaseUser, "acheck_password") is before


def test_setting_toggles_the_patch():
    """override_settings(LOOPSAFE={"PATCH_AUTH": True}) patches; leaving it unpatches."""
    with override_settings(LOOPSAFE={"PATCH_AUTH": True}):
        assert set(_patch.patched()) == expected_names()
    assert _patch.patched() == ()


needs_async_auth = pytest.mark.skipif(not HAS_ASYNC_AUTH, reason="Django 4.2 has no async auth")


@needs_async_auth
@pytest.mark.anyio
async def test_patched_stock_paths_run_on_the_pool(make_user):
    """With the patch, Django's own aauthenticate and acheck_password hash on the pool."""
    await sync_to_async(make_user)("pat", encoded=old_hash("pat-pw"))
    pool_threads = []
    original_verify = hashers.verify_password

    def spy(*args, **kwargs):
        pool_threads.append(threading.current_thread().name)
        return original_verify(*args, **kwargs)

    with (
        override_settings(
            LOOPSAFE={"PATCH_AUTH": True, "MAX_WORKERS": 2, "MAX_QUEUE_WAIT": None},
            AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"],
        ),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr(hashers, "verify_password", spy)
        before = loopsafe.default_pool().statistics().admitted
        user = await auth.aauthenticate(username="pat", password="pat-pw")
        assert user is not None
        assert await user.acheck_password("pat-pw") is True
        assert await hashers.acheck_password("pat-pw", user.password) is True
        assert await auth.aauthenticate(username="nobody", password="x") is None
        assert loopsafe.default_pool().statistics().admitted == before + 4
    assert pool_threads
    assert all(name.startswith("loopsafe-default-worker") for name in pool_threads)
    saved = (await User.objects.aget(username="pat")).password
    assert iterations_of(saved) == ITERATIONS


@needs_async_auth
@pytest.mark.anyio
async def test_patched_upgrade_saves_without_hashing_on_the_loop(make_user, monkeypatch):
    """The patched user.acheck_password never calls set_password (which hashes) on the loop."""
    user = await sync_to_async(make_user)("up", encoded=old_hash("up-pw"))
    called = []
    monkeypatch.setattr(User, "set_password", lambda self, raw: called.append(raw))
    _patch.patch()
    assert await user.acheck_password("up-pw") is True
    assert called == []
    assert iterations_of((await User.objects.aget(username="up")).password) == ITERATIONS
