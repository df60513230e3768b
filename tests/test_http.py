"""The one Retry-After rounding rule that every web integration shares."""

from __future__ import annotations

import pytest

from loopsafe._http import retry_after_seconds
from loopsafe._web import refusal
from loopsafe.exceptions import Overloaded, Throttled


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [
        pytest.param(0.0, 1, id="zero-is-one"),
        pytest.param(0.001, 1, id="under-a-second"),
        pytest.param(1.0, 1, id="whole"),
        pytest.param(1.001, 2, id="rounded-up"),
        pytest.param(59.5, 60, id="a-minute"),
        pytest.param(-3.0, 1, id="negative"),
        pytest.param(float("inf"), 1, id="no-estimate"),
        pytest.param(float("nan"), 1, id="nan"),
    ],
)
def test_whole_seconds_rounded_up_at_least_one(retry_after, seconds):
    """Retry-After is whole seconds (RFC 9110), rounded up, never below 1."""
    assert retry_after_seconds(retry_after) == seconds


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exc", "status", "handler"),
    [
        pytest.param(
            Overloaded(1.2, estimated_wait=3.0, queued=7),
            503,
            "overloaded_handler",
            id="overloaded",
        ),
        pytest.param(Throttled(1.2, scope="account"), 429, "throttled_handler", id="throttled"),
    ],
)
async def test_every_integration_answers_with_the_shared_refusal(exc, status, handler):
    """Starlette, Litestar and aiohttp answer Overloaded and Throttled with loopsafe._web's refusal.

    (Django's middleware answers plain text with the same status and header:
    tests/django/test_middleware.py and the conformance table.)
    """
    import json

    import loopsafe.aiohttp
    import loopsafe.litestar
    import loopsafe.starlette

    expected = refusal(exc)
    assert expected is not None
    assert expected.status == status
    assert expected.headers == {"Retry-After": "2"}
    starlette = await getattr(loopsafe.starlette, handler)(None, exc)
    litestar = getattr(loopsafe.litestar, handler)(None, exc)
    aiohttp = await loopsafe.aiohttp.overload_middleware(None, _raise(exc))  # type: ignore[arg-type]
    assert starlette.status_code == litestar.status_code == aiohttp.status == status
    assert starlette.headers["Retry-After"] == litestar.headers["Retry-After"] == "2"
    assert aiohttp.headers["Retry-After"] == "2"
    assert json.loads(starlette.body) == dict(expected.body)
    assert json.loads(aiohttp.text) == dict(expected.body)
    assert litestar.content == dict(expected.body)


def _raise(exc: Exception):
    async def handler(_request):
        raise exc

    return handler
