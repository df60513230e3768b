"""The views: an async login with ``aauthenticate``, and a health check that does nothing.

The login view is stock Django, the same in both modes: what an async login
does before ``alogin`` (look the user up, check the password). In the
loopsafe mode the backend hashes on loopsafe's pool, and loopsafe's
``OverloadMiddleware`` answers a login the pool refuses with 503.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import aauthenticate
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    JsonResponse,
)

#: The server's own loop-lag monitor, started by the first ``/lag`` request.
_MONITOR: dict[str, Any] = {}


async def login(request: HttpRequest) -> HttpResponse:
    """Check ``username`` and ``password`` from a POSTed form: 200 or 401."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    user = await aauthenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        return JsonResponse({"ok": False}, status=401)
    return JsonResponse({"ok": True})


async def health(request: HttpRequest) -> HttpResponse:  # noqa: ARG001 - Django passes it
    """Answer at once: its latency is how long the server kept it waiting."""
    return HttpResponse("ok", content_type="text/plain")


async def lag(request: HttpRequest) -> HttpResponse:
    """Report the server's event-loop lag (loopsafe's monitor) since the last reset.

    The first call starts the monitor on the server's loop; ``?reset=1``
    reports and then starts afresh. 404 where loopsafe is not installed.
    """
    try:
        from loopsafe import LoopLagMonitor  # noqa: PLC0415 - optional in the stock mode
    except ImportError:
        return HttpResponseNotFound("loopsafe is not installed")
    monitor = _MONITOR.get("monitor")
    if monitor is None:
        monitor = _MONITOR["monitor"] = LoopLagMonitor()
        await monitor.start()
    figures = {"samples": monitor.snapshot().samples, **monitor.snapshot().as_ms()}
    if request.GET.get("reset"):
        monitor.reset()
    return JsonResponse(figures)
