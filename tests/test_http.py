"""The one Retry-After rounding rule that every web integration shares."""

from __future__ import annotations

import pytest

from loopsafe._http import retry_after_seconds
from loopsafe._web import refusal
from loopsafe.exceptions import Overloaded


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
async def test_every_integration_answers_with_the_shared_refusal():
    """Starlette, Litestar and aiohttp answer Overloaded with loopsafe._web's one refusal.

    (Django's middleware answers plain text with the same status and header:
    tests/django/test_middleware.py and the conformance table.)
    """
    import json

    import loopsafe.aiohttp
    import loopsafe.litestar
    import loopsafe.starlette

    exc = Overloaded(1.2, estimated_wait=3.0, queued=7)
    expected = refusal(exc)
    assert expected is not None
    assert expected.headers == {"Retry-After": "2"}
    starlette = await loopsafe.starlette.overloaded_handler(None, exc)  # type: ignore[arg-type]
    litestar = loopsafe.litestar.overloaded_handler(None, exc)  # type: ignore[arg-type]
    aiohttp = await loopsafe.aiohttp.overload_middleware(None, _raise(exc))  # type: ignore[arg-type]
    assert starlette.status_code == litestar.status_code == aiohttp.status == 503
    assert starlette.headers["Retry-After"] == litestar.headers["Retry-After"] == "2"
    assert aiohttp.headers["Retry-After"] == "2"
    assert json.loads(starlette.body) == dict(expected.body)
    assert json.loads(aiohttp.text) == dict(expected.body)
    assert litestar.content == dict(expected.body)


def _raise(exc: Exception):
    async def handler(_request):
        raise exc

    return handler
