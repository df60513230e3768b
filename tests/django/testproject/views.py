"""Views that authenticate or raise `loopsafe.Overloaded`, for the middleware tests."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from loopsafe import Overloaded
from loopsafe.django import aauthenticate

#: What the raising views raise: retry in 2.2 s (Retry-After rounds up to 3).
REFUSAL = {"retry_after": 2.2, "estimated_wait": 3.5, "queued": 7}


async def _check(request: HttpRequest, authenticate: Any = aauthenticate) -> HttpResponse:
    """Authenticate the posted credentials: 200 with the username, or 401."""
    user = await authenticate(
        request,
        username=request.POST.get("username"),
        password=request.POST.get("password"),
    )
    if user is None:
        return HttpResponse("no\n", status=401)
    return HttpResponse(f"{user.get_username()}\n")


async def login(request: HttpRequest) -> HttpResponse:
    """Check the posted credentials: 200 with the username, or 401."""
    return await _check(request)


async def login_device(request: HttpRequest) -> HttpResponse:
    """`login`, and a device cookie for the user on success."""
    from loopsafe.django import set_device_cookie

    response = await _check(request)
    if response.status_code == 200:
        set_device_cookie(response, request.POST["username"])
    return response


async def login_django(request: HttpRequest) -> HttpResponse:
    """`login`, through Django's own ``aauthenticate`` (Django 5.0+)."""
    from django.contrib.auth import aauthenticate as django_aauthenticate

    return await _check(request, django_aauthenticate)


async def overloaded(request: HttpRequest) -> HttpResponse:
    """Raise `Overloaded` from an async view."""
    raise Overloaded(
        REFUSAL["retry_after"],
        estimated_wait=REFUSAL["estimated_wait"],
        queued=int(REFUSAL["queued"]),
    )


def overloaded_sync(request: HttpRequest) -> HttpResponse:
    """Raise `Overloaded` from a sync view."""
    raise Overloaded(
        REFUSAL["retry_after"],
        estimated_wait=REFUSAL["estimated_wait"],
        queued=int(REFUSAL["queued"]),
    )


async def health(request: HttpRequest) -> HttpResponse:
    """Answer at once."""
    return HttpResponse("ok\n")
