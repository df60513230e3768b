"""A password never shows: not in logs (DEBUG), exception messages, reprs, or error reports."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter
from testproject.hashers import old_hash

import loopsafe
from loopsafe.django import (
    aauthenticate,
    acheck_password,
    amake_password,
    aset_password,
    averify_password,
)

pytestmark = pytest.mark.anyio

MARKER = "Marker-Pa55word-9f3c1e"


class ExplodingHasher:
    """A configured hasher whose verify raises from deep inside the pool's worker."""

    algorithm = "exploding"

    def verify(self, password, encoded):  # noqa: ARG002 - Django's hasher signature
        raise RuntimeError("the hasher library failed")

    def must_update(self, encoded):  # noqa: ARG002
        return False


def texts_of(exc):
    """Everything an exception shows: str, repr, args, and the formatted traceback."""
    return [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]


async def run_every_path(make_user):
    """Drive every loopsafe.django path with the marker; return what they showed."""
    shown = []
    await sync_to_async(make_user)("leak-right", password=MARKER)
    await sync_to_async(make_user)("leak-old", encoded=old_hash(MARKER))
    for username in ("leak-right", "leak-old", "leak-nobody"):
        for password in (MARKER, MARKER + "x"):
            user = await aauthenticate(None, username=username, password=password)
            shown.append(repr(user))
    stored = await amake_password(MARKER)
    shown.append(repr(await averify_password(MARKER, stored)))
    shown.append(repr(await acheck_password(MARKER, stored)))
    user = User(username="leak-set")
    await aset_password(user, MARKER)
    shown.extend(
        [repr(user), repr(loopsafe.default_pool()), repr(loopsafe.default_pool().statistics())]
    )
    for bad in ("md5$$x", "pbkdf2_sha256$zz$y$z"):
        shown.extend(await error_texts(acheck_password(MARKER, bad)))
    return shown


async def error_texts(call):
    """Await a call that raises; return what its exception shows."""
    try:
        await call
    except Exception as exc:  # noqa: BLE001 - whatever Django raises must not show the password
        return texts_of(exc)
    return []


async def test_no_path_logs_or_shows_the_password(make_user, caplog):
    """Every path, with DEBUG logging on every logger, never logs or shows the password."""
    caplog.set_level(logging.DEBUG)
    shown = await run_every_path(make_user)
    logged = [record.getMessage() + repr(record.args) for record in caplog.records]
    leaked = [text for text in shown + logged if MARKER in text]
    assert not leaked


async def test_overloaded_refusal_never_shows_the_password(make_user, saturate, caplog):
    """A refused login's exception and the middleware's log line hold counts, never the password."""
    caplog.set_level(logging.DEBUG)
    await sync_to_async(make_user)("leak-busy", password="x")
    with override_settings(LOOPSAFE={"MAX_WORKERS": 1, "MAX_QUEUE_WAIT": None, "MAX_PENDING": 1}):
        async with saturate(loopsafe.default_pool()):
            with pytest.raises(loopsafe.Overloaded) as refused:
                await aauthenticate(None, username="leak-busy", password=MARKER)
            pending = asyncio.ensure_future(acheck_password(MARKER, "md5$$x"))
            await asyncio.sleep(0)
            shown = [repr(pending)]
            pending.cancel()
    shown += texts_of(refused.value)
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if MARKER in text]


async def test_error_report_hides_the_password_in_every_frame(make_user, monkeypatch):
    """Django's error report of an exception inside the pool's hasher shows no password.

    The frames on the worker thread (loopsafe's and Django's hasher code) are
    marked with sensitive_variables, so the DEBUG page and admin e-mails show
    stars where the password was.
    """
    from django.contrib.auth import hashers
    from django.utils.version import get_complete_version

    if get_complete_version() < (5, 0):
        pytest.skip("Django 4.2 cannot mark coroutine frames")
    await sync_to_async(make_user)("leak-boom", encoded="exploding$salt$x")
    monkeypatch.setattr(hashers, "identify_hasher", lambda encoded: ExplodingHasher())
    try:
        await aauthenticate(None, username="leak-boom", password=MARKER)
    except RuntimeError:
        exc_info = sys.exc_info()
    else:  # pragma: no cover - the hasher always raises
        pytest.fail("the exploding hasher did not raise")
    request = RequestFactory().post("/login/")
    reporter = ExceptionReporter(request, *exc_info)
    html = await sync_to_async(reporter.get_traceback_html)()
    text = await sync_to_async(reporter.get_traceback_text)()
    assert "the hasher library failed" in text
    assert MARKER not in html
    assert MARKER not in text
