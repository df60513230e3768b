"""django-axes lockouts on every async login path loopsafe provides: refused before any hash.

Real django-axes (its database handler, its signals, its middleware) on the
test project's SQLite database, ``AXES_FAILURE_LIMIT = 3`` per username.
Each case records three failures (through Django's synchronous
``authenticate`` or through the async path), then tries the right password
through the async path: it must be refused, with no hash computed and no
exception. The hashes are counted by the configured hasher itself
(``testproject.hashers.CountingPBKDF2PasswordHasher``), on whichever thread
runs them.
"""

from __future__ import annotations

import contextlib
import itertools

import django
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient, RequestFactory, override_settings

from loopsafe.django import _sync_backends
from loopsafe.django import aauthenticate as loopsafe_aauthenticate
from loopsafe.django import checks as loopsafe_checks

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not getattr(settings, "HAS_AXES", False), reason="django-axes not installed"
    ),
]

HAS_DJANGO_AAUTHENTICATE = django.VERSION >= (5, 0)
LIMIT = 3
RIGHT = "right-pw-123"
WRONG = "wrong-pw-456"
AXES_BACKEND = "axes.backends.AxesBackend"
AXES_STANDALONE = "axes.backends.AxesStandaloneBackend"
LOOPSAFE_BACKEND = "loopsafe.django.backends.ModelBackend"
DJANGO_BACKEND = "django.contrib.auth.backends.ModelBackend"
COUNTING = "testproject.hashers.CountingPBKDF2PasswordHasher"
_names = (f"axes-user-{n}" for n in itertools.count())


@contextlib.contextmanager
def axes_on(axes_backend, mode, *, middleware=False):
    """Turn django-axes on, ``axes_backend`` first, loopsafe in ``mode`` ("patch"/"backend")."""
    second = DJANGO_BACKEND if mode == "patch" else LOOPSAFE_BACKEND
    extra = {}
    if middleware:
        extra["MIDDLEWARE"] = [*settings.MIDDLEWARE, "axes.middleware.AxesMiddleware"]
    with override_settings(
        AXES_ENABLED=True,
        AXES_FAILURE_LIMIT=LIMIT,
        AXES_LOCKOUT_PARAMETERS=["username"],
        AXES_RESET_ON_SUCCESS=True,
        AUTHENTICATION_BACKENDS=[axes_backend, second],
        PASSWORD_HASHERS=[COUNTING, *settings.PASSWORD_HASHERS],
        LOOPSAFE={**settings.LOOPSAFE, "PATCH_AUTH": mode == "patch"},
        **extra,
    ):
        yield


@pytest.fixture(autouse=True)
def clean_axes_tables():
    """Delete what axes recorded after each test."""
    yield
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        model.objects.all().delete()


def hashes():
    """Return how many hashes the counting hasher has computed so far."""
    from testproject.hashers import CountingPBKDF2PasswordHasher

    return CountingPBKDF2PasswordHasher.hashes


def login_request(username, password):
    """A POST to the login URL from one address, as axes sees it."""
    return RequestFactory().post(
        "/login/", {"username": username, "password": password}, REMOTE_ADDR="203.0.113.7"
    )


async def async_login(entry, username, password):
    """Log in through ``entry``: Django's ``aauthenticate`` or loopsafe's."""
    if entry == "django":
        from django.contrib.auth import aauthenticate

        function = aauthenticate
    else:
        function = loopsafe_aauthenticate
    request = login_request(username, password)
    return await function(request, username=username, password=password)


async def sync_login(username, password):
    """Log in through Django's synchronous ``authenticate`` (a sync view, the admin)."""
    from django.contrib.auth import authenticate

    request = login_request(username, password)
    return await sync_to_async(authenticate)(request, username=username, password=password)


async def failures_of(username):
    """Return axes' recorded failures for ``username`` (0 when none)."""
    from axes.models import AccessAttempt

    attempt = await AccessAttempt.objects.filter(username=username).afirst()
    return 0 if attempt is None else attempt.failures_since_start


AXES_BACKENDS = [
    pytest.param(AXES_BACKEND, id="AxesBackend"),
    pytest.param(AXES_STANDALONE, id="AxesStandaloneBackend"),
]
MODES = [pytest.param("patch", id="PATCH_AUTH"), pytest.param("backend", id="loopsafe-backend")]
ENTRIES = [
    pytest.param(
        "django",
        id="django-aauthenticate",
        marks=pytest.mark.skipif(
            not HAS_DJANGO_AAUTHENTICATE, reason="Django 4.2 has no aauthenticate"
        ),
    ),
    pytest.param("loopsafe", id="loopsafe-aauthenticate"),
]
ORDERS = [pytest.param("sync", id="sync-failures"), pytest.param("async", id="async-failures")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes_backend", AXES_BACKENDS)
async def test_locked_out_right_password_is_refused_without_a_hash(
    axes_backend, mode, entry, order, make_user
):
    """After LIMIT recorded failures, the right password is refused async, 0 hashes, no error."""
    username = next(_names)
    with axes_on(axes_backend, mode):
        await sync_to_async(make_user)(username, password=RIGHT)
        for _ in range(LIMIT):
            if order == "sync":
                assert await sync_login(username, WRONG) is None
            else:
                assert await async_login(entry, username, WRONG) is None
        assert await failures_of(username) == LIMIT
        before = hashes()
        assert await async_login(entry, username, RIGHT) is None
        assert hashes() - before == 0
        assert await sync_login(username, RIGHT) is None
        assert hashes() - before == 0


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes_backend", AXES_BACKENDS)
async def test_async_failures_are_recorded_once_each(axes_backend, mode, entry, make_user):
    """Each wrong password on the async path adds exactly one failure, and costs one hash."""
    username = next(_names)
    with axes_on(axes_backend, mode):
        await sync_to_async(make_user)(username, password=RIGHT)
        for expected in range(1, LIMIT):
            before = hashes()
            assert await async_login(entry, username, WRONG) is None
            assert hashes() - before == 1
            assert await failures_of(username) == expected


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes_backend", AXES_BACKENDS)
async def test_user_not_locked_out_logs_in_with_one_hash(axes_backend, mode, entry, make_user):
    """Below the limit the right password logs in through the model backend, one hash."""
    username = next(_names)
    with axes_on(axes_backend, mode):
        await sync_to_async(make_user)(username, password=RIGHT)
        assert await async_login(entry, username, WRONG) is None
        before = hashes()
        user = await async_login(entry, username, RIGHT)
        assert user is not None
        assert user.get_username() == username
        assert user.backend == (DJANGO_BACKEND if mode == "patch" else LOOPSAFE_BACKEND)
        assert hashes() - before == 1


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            "/login-django/",
            id="django-aauthenticate-view",
            marks=pytest.mark.skipif(
                not HAS_DJANGO_AAUTHENTICATE, reason="Django 4.2 has no aauthenticate"
            ),
        ),
        pytest.param("/login/", id="loopsafe-aauthenticate-view"),
    ],
)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("axes_backend", AXES_BACKENDS)
async def test_async_login_view_answers_axes_lockout(axes_backend, mode, url, make_user):
    """Over HTTP (ASGI handler, axes' middleware): 401, 401, then axes' 429, right password too."""
    username = next(_names)
    with axes_on(axes_backend, mode, middleware=True):
        await sync_to_async(make_user)(username, password=RIGHT)
        client = AsyncClient(REMOTE_ADDR="203.0.113.7")
        statuses = []
        for password in [WRONG] * (LIMIT + 1):
            response = await client.post(url, {"username": username, "password": password})
            statuses.append(response.status_code)
        before = hashes()
        response = await client.post(url, {"username": username, "password": RIGHT})
        statuses.append(response.status_code)
        assert hashes() - before == 0
    assert statuses == [401, 401, 429, 429, 429]


def test_check_names_backends_an_async_login_would_skip_or_crash_on():
    """W007 names each axes backend, bypassed or crashing, while loopsafe does not bridge them."""
    if not HAS_DJANGO_AAUTHENTICATE:
        pytest.skip("Django 4.2 has no aauthenticate to skip a backend")
    backends = [AXES_BACKEND, AXES_STANDALONE, DJANGO_BACKEND]
    with override_settings(
        AUTHENTICATION_BACKENDS=backends, LOOPSAFE={**settings.LOOPSAFE, "PATCH_AUTH": False}
    ):
        messages = [
            m
            for m in loopsafe_checks.check_sync_only_backends()
            if m.id == "loopsafe.W007"  # the only id it reports
        ]
    assert [m.obj for m in messages] == [AXES_BACKEND, AXES_STANDALONE]
    bypass, crash = (m.msg for m in messages)
    assert "django.contrib.auth.backends.ModelBackend's" in bypass
    assert "AttributeError" in crash
    assert all("PATCH_AUTH" in m.hint for m in messages)


@pytest.mark.parametrize("mode", MODES)
def test_bridged_while_loopsafe_serves_async_logins_and_taken_back_after(mode):
    """PATCH_AUTH or loopsafe's backend bridges the axes classes (W007 silent); undone after."""
    from axes.backends import AxesBackend, AxesStandaloneBackend

    if not HAS_DJANGO_AAUTHENTICATE:
        pytest.skip("Django 4.2 has no aauthenticate: nothing to bridge")
    stock_axes_aauthenticate = AxesBackend.aauthenticate
    with (
        axes_on(AXES_STANDALONE, mode),
        override_settings(
            AUTHENTICATION_BACKENDS=[AXES_BACKEND, AXES_STANDALONE, LOOPSAFE_BACKEND]
            if mode == "backend"
            else [AXES_BACKEND, AXES_STANDALONE, DJANGO_BACKEND]
        ),
    ):
        assert "axes.backends.AxesStandaloneBackend" in _sync_backends.bridged()
        assert _sync_backends.bypass_kind(AxesBackend) is None
        assert loopsafe_checks.check_sync_only_backends() == []
    with axes_on(AXES_BACKEND, mode):
        assert _sync_backends.bridged() == ("axes.backends.AxesBackend",)
    assert _sync_backends.bridged() == ()
    assert AxesBackend.aauthenticate is stock_axes_aauthenticate
    assert not hasattr(AxesStandaloneBackend, "aauthenticate")


def test_bypass_kind_reads_the_mro_not_names():
    """A sync-only override of ModelBackend is a bypass; BaseBackend's delegation is not."""
    from django.contrib.auth import backends

    class Gate:
        def authenticate(self, request, **credentials):  # noqa: ARG002 - Django's signature
            return None

    class GatedModel(backends.ModelBackend):
        def authenticate(self, request, **credentials):  # noqa: ARG002 - Django's signature
            return None

    class Delegating(backends.BaseBackend):
        def authenticate(self, request, **credentials):  # noqa: ARG002 - Django's signature
            return None

    assert _sync_backends.bypass_kind(Gate) == "crash"
    expected = "bypass" if HAS_DJANGO_AAUTHENTICATE else "crash"
    assert _sync_backends.bypass_kind(GatedModel) == expected
    assert _sync_backends.bypass_kind(Delegating) is (None if HAS_DJANGO_AAUTHENTICATE else "crash")
    assert _sync_backends.bypass_kind(backends.RemoteUserBackend) is (
        None if HAS_DJANGO_AAUTHENTICATE else "crash"
    )
