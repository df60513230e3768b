"""The one Retry-After rounding rule that every web integration shares."""

from __future__ import annotations

import pytest

from loopsafe._http import retry_after_seconds


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


def test_every_integration_uses_the_same_function():
    """Starlette, Litestar, aiohttp and Django all round with loopsafe._http's function."""
    import loopsafe.aiohttp
    import loopsafe.django.middleware
    import loopsafe.litestar
    import loopsafe.starlette

    assert loopsafe.starlette.retry_after_seconds is retry_after_seconds
    assert loopsafe.litestar.retry_after_seconds is retry_after_seconds
    assert loopsafe.aiohttp.retry_after_seconds is retry_after_seconds
    assert loopsafe.django.middleware.retry_after_seconds is retry_after_seconds
