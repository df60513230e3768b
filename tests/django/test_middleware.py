"""``OverloadMiddleware``: Overloaded becomes 503 with Retry-After, in async and sync stacks."""

from __future__ import annotations

import logging
import math

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, override_settings

import loopsafe
from loopsafe import Overloaded
from loopsafe.django.middleware import OverloadMiddleware

pytestmark = pytest.mark.anyio


async def test_async_view_overloaded_is_503_with_retry_after(caplog):
    """An async view raising Overloaded answers 503, Retry-After rounded up, one warning logged."""
    caplog.set_level(logging.WARNING, logger="loopsafe.django")
    response = await AsyncClient().get("/overloaded/")
    assert response.status_code == 503
    assert response["Retry-After"] == "3"
    assert response["Content-Type"].startswith("text/plain")
    [record] = [r for r in caplog.records if r.name == "loopsafe.django"]
    assert record.levelno == logging.WARNING
    assert "/overloaded/" in record.getMessage()


def test_sync_view_overloaded_is_503():
    """The same under the sync handler (WSGI)."""
    response = Client().get("/overloaded-sync/")
    assert response.status_code == 503
    assert response["Retry-After"] == "3"


async def test_other_views_pass_through():
    """Healthy requests are untouched."""
    response = await AsyncClient().get("/health/")
    assert response.status_code == 200
    assert "Retry-After" not in response


async def test_real_login_storm_refusal_is_503_and_not_a_failed_login(make_user, saturate):
    """A refused login answers 503 without user_login_failed; /health/ still answers 200."""
    await sync_to_async(make_user)("gina", password="gina-pw")
    failed = []

    def receiver(**kwargs):
        failed.append(kwargs)

    user_login_failed.connect(receiver)
    client = AsyncClient()
    try:
        # No client keys: the saturating calls and the login share one FIFO queue
        # (with keys, the login would get in: tests/django/test_client_key.py).
        with override_settings(
            LOOPSAFE={
                "MAX_WORKERS": 1,
                "MAX_QUEUE_WAIT": None,
                "MAX_PENDING": 1,
                "CLIENT_KEY": None,
            }
        ):
            async with saturate(loopsafe.default_pool()):
                refused = await client.post("/login/", {"username": "gina", "password": "gina-pw"})
                health = await client.get("/health/")
            accepted = await client.post("/login/", {"username": "gina", "password": "gina-pw"})
            wrong = await client.post("/login/", {"username": "gina", "password": "nope"})
    finally:
        user_login_failed.disconnect(receiver)
    assert refused.status_code == 503
    assert int(refused["Retry-After"]) >= 1
    assert health.status_code == 200
    assert accepted.status_code == 200
    assert wrong.status_code == 401
    assert len(failed) == 1  # the wrong password only


def test_process_exception_ignores_other_errors():
    """Any other exception is left to Django (process_exception returns None)."""
    middleware = OverloadMiddleware(lambda request: HttpResponse())
    assert middleware.process_exception(HttpRequest(), ValueError("x")) is None


def test_call_catches_overloaded_reaching_it_directly():
    """Outside Django's handler (or with DEBUG_PROPAGATE_EXCEPTIONS) __call__ answers 503 too."""

    def raising(request):
        raise loopsafe.Overloaded(0.01, estimated_wait=0.5, queued=3)

    request = HttpRequest()
    request.method, request.path = "GET", "/x"
    response = OverloadMiddleware(raising)(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "1"


@pytest.mark.parametrize(
    "mode", [pytest.param("sync", id="sync"), pytest.param("async", id="async")]
)
async def test_throttled_is_429_with_the_shared_refusals_retry_after(mode):
    """A spent login budget (Throttled) is 429, Retry-After in whole seconds, in both stacks."""
    from loopsafe import Throttled
    from loopsafe._web import refusal

    exc = Throttled(2.3, scope="account")

    def raising(request):
        raise exc

    async def araising(request):
        raise exc

    request = HttpRequest()
    request.method, request.path = "POST", "/login/"
    if mode == "sync":
        response = OverloadMiddleware(raising)(request)
    else:
        response = await OverloadMiddleware(araising)(request)
    answer = refusal(exc)
    assert answer is not None
    assert response.status_code == answer.status == 429
    assert response["Retry-After"] == answer.headers["Retry-After"] == "3"
    assert response["Content-Type"].startswith("text/plain")
    assert OverloadMiddleware(raising).process_exception(request, exc).status_code == 429


async def test_async_mode_is_detected_and_catches():
    """With an async get_response the middleware is a coroutine function and catches too."""
    from asgiref.sync import iscoroutinefunction

    async def raising(request):
        raise loopsafe.Overloaded(4.5, estimated_wait=5.0, queued=9)

    middleware = OverloadMiddleware(raising)
    assert iscoroutinefunction(middleware)
    request = HttpRequest()
    request.method, request.path = "POST", "/login/"
    response = await middleware(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [
        pytest.param(math.inf, "1", id="infinite-is-one"),
        pytest.param(math.nan, "1", id="nan-is-one"),
        pytest.param(0.2, "1", id="under-a-second-is-one"),
        pytest.param(4.01, "5", id="rounds-up"),
    ],
)
def test_retry_after_is_always_a_valid_header(retry_after, header, caplog):
    """A non-finite or fractional estimate still becomes whole seconds, at least 1."""
    from django.test import RequestFactory

    from loopsafe.django.middleware import OverloadMiddleware

    middleware = OverloadMiddleware(lambda request: None)
    refusal = Overloaded(retry_after, estimated_wait=1.0, queued=2)
    with caplog.at_level(logging.WARNING, logger="loopsafe.django"):
        response = middleware.overloaded_response(RequestFactory().post("/login/"), refusal)
    assert response.status_code == 503
    assert response["Retry-After"] == header
    assert f"Retry-After {header}s" in caplog.text
