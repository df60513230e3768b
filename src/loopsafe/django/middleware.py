"""`OverloadMiddleware`: answer `loopsafe.Overloaded` with HTTP 503 and ``Retry-After``.

Add it to ``MIDDLEWARE`` (anywhere; first is a good place)::

    MIDDLEWARE = ["loopsafe.django.middleware.OverloadMiddleware", ...]

When the hashing pool refuses a login (its queue would wait longer than
``LOOPSAFE["MAX_QUEUE_WAIT"]``), the view's ``aauthenticate`` raises
`loopsafe.Overloaded`. Without this middleware Django answers 500 and logs an
error; with it the client gets 503 with a ``Retry-After`` header at once, and
the overload is logged once at WARNING on the ``loopsafe.django`` logger
(counts and seconds only). A `loopsafe.Throttled` (`loopsafe.throttle`'s
per-account budget) becomes 429 with ``Retry-After``. Works under ASGI and WSGI.

It also names the client each request hashes for: ``LOOPSAFE["CLIENT_KEY"]``
(by default the address Django sees) is put in a context variable for the
request, and every loopsafe pool call made while serving it (the backend,
the mixin, `loopsafe.django.amake_password` in a signup view...) passes that
key, so under a flood each client gets a fair share of the pool. The key is
never logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse

from loopsafe._web import refusal
from loopsafe.django._client import client_key, using_key
from loopsafe.exceptions import Overloaded, Throttled

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from django.http import HttpRequest
    from django.http.response import HttpResponseBase

    from loopsafe._web import Refusal

__all__ = ["OverloadMiddleware"]

_log = logging.getLogger("loopsafe.django")


class OverloadMiddleware:
    """Turn `loopsafe.Overloaded` from a view (or inner middleware) into HTTP 503.

    Django converts a view's exception into a response before outer
    middleware sees it, so the work is done in ``process_exception``; the
    ``__call__`` wrapper also catches an `Overloaded` that reaches it
    directly (with ``DEBUG_PROPAGATE_EXCEPTIONS``, or outside Django's
    handler). Override `overloaded_response` to change the answer.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
    ) -> None:
        """Wrap ``get_response``, in async mode when it is a coroutine function."""
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        """Pass the request on; answer 503 if `Overloaded` comes back up."""
        if self.async_mode:
            return self.__acall__(request)
        try:
            with using_key(client_key(request)):
                response = self.get_response(request)
        except Overloaded as exc:
            return self.overloaded_response(request, exc)
        except Throttled as exc:
            return self.throttled_response(exc)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """Async twin of `__call__`."""
        try:
            with using_key(client_key(request)):
                response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc] # async mode: get_response is async
        except Overloaded as exc:
            return self.overloaded_response(request, exc)
        except Throttled as exc:
            return self.throttled_response(exc)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """Answer a view's `Overloaded` with 503; leave every other exception to Django."""
        if isinstance(exception, Overloaded):
            return self.overloaded_response(request, exception)
        if isinstance(exception, Throttled):
            return self.throttled_response(exception)
        return None

    def throttled_response(self, exc: Throttled) -> HttpResponse:
        """Return the 429 answering `loopsafe.throttle`'s refusal, with ``Retry-After``."""
        answer = refusal(exc)
        assert answer is not None  # noqa: S101 - refusal() answers every Throttled
        return _plain_text(answer, "Too many login attempts; please retry later.\n")

    def overloaded_response(self, request: HttpRequest, exc: Overloaded) -> HttpResponse:
        """Return the 503 response: plain text, ``Retry-After`` in whole seconds (at least 1).

        Args:
            request: The request that was refused.
            exc: The refusal, with ``retry_after``, ``estimated_wait`` and ``queued``.
        """
        answer = refusal(exc)
        assert answer is not None  # noqa: S101 - refusal() answers every Overloaded
        retry_after = int(answer.headers["Retry-After"])
        _log.warning(
            "password hashing overloaded (%s): answered 503 to %s %s (%d queued, estimated "
            "wait %.2fs, Retry-After %ds)",
            exc.reason,
            request.method,
            request.path,
            exc.queued,
            exc.estimated_wait,
            retry_after,
        )
        return _plain_text(answer, "The server is busy checking passwords; please retry shortly.\n")


def _plain_text(answer: Refusal, text: str) -> HttpResponse:
    """``answer``'s status and headers (`loopsafe._web.refusal`) with a plain-text body."""
    response = HttpResponse(text, status=answer.status, content_type="text/plain; charset=utf-8")
    for name, value in answer.headers.items():
        response[name] = value
    return response
