"""Secrets hygiene: a password never shows in a log record, an exception, a traceback or a repr.

Each test runs part of the public API with a marker password (random per run,
so it never appears in source lines a traceback could quote) and hands every
object it meets to a `Leaks` collector, which fails the test if the marker is
in its ``str``, ``repr``, exception ``args``, exception chain or
``traceback.format_exception`` text. Every log record emitted at DEBUG or
above, by any logger, is checked the same way.

Tracebacks quote source lines, not local variables. Error reporters that do
capture frame locals (Sentry, rich's ``show_locals``) scrub variables named
``password``; `test_loopsafe_frames_hold_the_password_only_as_password` checks
that no loopsafe frame in a traceback holds it under any other name.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import pathlib
import pickle
import secrets
import textwrap
import threading
import traceback
from typing import TYPE_CHECKING

import pytest

import loopsafe
from _support import cheap_hashers, facade_for, iter_exception_chain, report, run_child
from loopsafe import (
    HashPool,
    LoopLagMonitor,
    Overloaded,
    PasswordHash,
    default_pool,
    profiles,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = pytest.mark.anyio

MARKER = "mk" + secrets.token_hex(12)


class Leaks:
    """Collects every place the marker showed up, named by what was being looked at."""

    def __init__(self, marker: str) -> None:
        """Look for ``marker`` (and its UTF-8 and repr forms)."""
        self.needles = {marker, repr(marker)[1:-1], marker.encode().hex()}
        self.found: list[str] = []
        self.checked = 0
        self.records: list[logging.LogRecord] = []
        self._logged = 0

    def _scan(self, label: str, text: str) -> None:
        self.checked += 1
        if any(needle in text for needle in self.needles):
            self.found.append(f"{label}: {text[:300]!r}")

    def check(self, label: str, obj: object) -> None:
        """Look at ``obj``'s str and repr; for an exception also its args, chain and traceback."""
        self._scan(f"str({label})", str(obj))
        self._scan(f"repr({label})", repr(obj))
        if isinstance(obj, BaseException):
            self._scan(f"traceback({label})", "".join(traceback.format_exception(obj)))
            for linked in iter_exception_chain(obj):
                self._scan(f"repr({label} chain {type(linked).__name__})", repr(linked))
                self._scan(f"args({label} chain {type(linked).__name__})", repr(linked.args))
                notes = getattr(linked, "__notes__", [])
                self._scan(f"notes({label})", repr(notes))

    async def raises(self, label: str, make: Callable[[], Awaitable[object]]) -> BaseException:
        """Await ``make()``, which must raise; check and return the exception."""
        try:
            await make()
        except BaseException as exc:  # noqa: BLE001 - any exception is inspected
            self.check(label, exc)
            return exc
        pytest.fail(f"{label}: expected an exception")

    def raises_sync(self, label: str, make: Callable[[], object]) -> BaseException:
        """Call ``make()``, which must raise; check and return the exception."""
        try:
            make()
        except Exception as exc:  # noqa: BLE001
            self.check(label, exc)
            return exc
        pytest.fail(f"{label}: expected an exception")

    def answer(self, label: str, make: Callable[[], object]) -> None:
        """Call ``make()`` and check what it returned or raised (either is fine, if clean)."""
        try:
            value = make()
        except Exception as exc:  # noqa: BLE001 - any documented error is fine, if clean
            value = exc
        self.check(label, value)

    async def aanswer(self, label: str, make: Callable[[], Awaitable[object]]) -> None:
        """Await ``make()`` and check what it returned or raised."""
        try:
            value = await make()
        except Exception as exc:  # noqa: BLE001
            value = exc
        self.check(label, value)

    def assert_clean(self) -> None:
        """Scan the log records captured so far, then fail listing every leak found.

        Each test calls it as its last step, so a leak fails the test itself
        (the fixture checks again at teardown, for records logged after it).
        """
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in self.records[self._logged :]:
            label = f"log {record.name}:{record.levelname}"
            self.check(label, formatter.format(record))
            self.check(f"{label} args", record.args)
        self._logged = len(self.records)
        assert self.checked > 0, "nothing was scanned: the test checked no text"
        assert not self.found, "the password leaked:\n" + "\n".join(self.found)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def leaks() -> Iterator[Leaks]:
    """Capture every log record at DEBUG from every logger; check them all at the end."""
    found = Leaks(MARKER)
    capture = _Capture()
    found.records = capture.records
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict)),
    ]
    saved = [(logger, logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for name in ("loopsafe", "loopsafe.pool", "asyncio", "trio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(capture)
    try:
        yield found
    finally:
        logging.getLogger().removeHandler(capture)
        for logger, level, propagate in saved:
            logger.setLevel(level)
            logger.propagate = propagate
    found.assert_clean()
    report(f"secrets: {found.checked} texts scanned, {len(capture.records)} log records")


# -- the facade -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [h.algorithm for h in cheap_hashers()])
async def test_facade_never_shows_the_password(leaks, algorithm):
    """hash/verify/verify_and_update/dummy, sync and async, with their reprs and results."""
    pool = HashPool(2, name="secrets")
    ph = facade_for(algorithm, pool=pool)
    leaks.check("PasswordHash", ph)
    stored = ph.hash(MARKER)
    leaks.check("sync hash", stored)
    leaks.check("async hash", await ph.ahash(MARKER))
    leaks.check("salted hash", ph.hash(MARKER, salt=ph.preferred.salt()))
    for password in (MARKER, MARKER.encode(), "wrong", None):
        leaks.check("verify", ph.verify(password, stored))
        leaks.check("averify", await ph.averify(password, stored))
        leaks.check("verify_and_update", ph.verify_and_update(password, stored))
        leaks.check("averify_and_update", await ph.averify_and_update(password, stored))
    # An outdated hash: verify_and_update hands back a new hash, never the password.
    other = next(h for h in cheap_hashers() if h.algorithm != algorithm)
    outdated = other.hash(MARKER)
    leaks.check("upgrade", ph.verify_and_update(MARKER, outdated))
    leaks.check("aupgrade", await ph.averify_and_update(MARKER, outdated))
    leaks.check("dummy", await ph.averify_dummy())
    # Malformed hashes and odd passwords built around the marker.
    for encoded in ("", "!", f"!{MARKER}", f"{algorithm}${MARKER}", stored[:-3], f"{MARKER}$x$y"):
        leaks.check("verify malformed", ph.verify(MARKER, encoded))
        leaks.check("averify malformed", await ph.averify(MARKER, encoded))
    for odd in (
        MARKER + "\ud800",
        MARKER * 5000,
        MARKER + "\x00",
        (MARKER + "é").encode("latin-1"),
    ):
        for label, make in (
            ("ahash odd", functools.partial(ph.ahash, odd)),
            ("averify odd", functools.partial(ph.averify, odd, stored)),
        ):
            await leaks.aanswer(label, make)
    # Wrong types name the type, not the value.
    leaks.raises_sync("hash of a list", lambda: ph.hash([MARKER]))  # type: ignore[list-item]
    await leaks.raises("ahash of a list", lambda: ph.ahash([MARKER]))  # type: ignore[arg-type]
    leaks.raises_sync("verify bytes hash", lambda: ph.verify(MARKER, MARKER.encode()))  # type: ignore[arg-type]
    leaks.check("pool", pool)
    leaks.check("statistics", pool.statistics())
    await pool.aclose()
    leaks.assert_clean()


@pytest.mark.parametrize("hasher", [pytest.param(h, id=h.algorithm) for h in cheap_hashers()])
def test_hashers_never_show_the_password(leaks, hasher):
    """Each hasher's encode/verify/must_update and reprs, with good and broken input."""
    leaks.check("hasher", hasher)
    salt = hasher.salt()
    encoded = hasher.encode(MARKER, salt)
    leaks.check("encode", encoded)
    leaks.check("verify", hasher.verify(MARKER, encoded))
    leaks.check("verify wrong", hasher.verify("wrong", encoded))
    leaks.check("must_update", hasher.must_update(encoded))
    for odd in (MARKER + "\ud800", MARKER * 5000, f"{MARKER}\x00"):
        for label, make in (
            ("hash odd", functools.partial(hasher.hash, odd)),
            ("verify odd", functools.partial(hasher.verify, odd, encoded)),
        ):
            leaks.answer(label, make)
    for broken in (f"{hasher.algorithm}${MARKER}", encoded[:-4], f"{encoded}$x"):
        leaks.answer("verify broken", functools.partial(hasher.verify, MARKER, broken))
    for profile in (profiles.CHEAP, profiles.DEFAULT):
        leaks.check("profile", profile)
    leaks.assert_clean()


@pytest.mark.parametrize("call", ["hash", "ahash"])
def test_unencodable_password_error_carries_no_password(call):
    """The ValueError for a lone-surrogate password holds no password, not even in __context__."""
    ph = PasswordHash(cheap_hashers())
    password = MARKER + "\ud800"
    make = {"hash": lambda: ph.hash(password), "ahash": lambda: asyncio.run(ph.ahash(password))}
    with pytest.raises(ValueError, match="not valid Unicode") as caught:
        make[call]()
    chain = list(iter_exception_chain(caught.value, follow_suppressed=True))
    assert not [e for e in chain if MARKER in repr(e.args)], [repr(e) for e in chain]


# -- the pool's errors ------------------------------------------------------------------


async def test_pool_errors_never_show_the_password(leaks):
    """Overloaded, TimeoutError, cancellation and PoolClosed, with a password in the call."""
    import anyio

    pool = HashPool(1, max_pending=1, max_queue_wait=None, name="secrets-errors")
    ph = facade_for(cheap_hashers()[0].algorithm, pool=pool)
    stored = ph.hash(MARKER)
    release = threading.Event()
    events: list[tuple[str, float]] = []
    remove = pool.add_listener(lambda event, seconds: events.append((event, seconds)))

    def broken_listener(event: str, seconds: float) -> None:
        raise RuntimeError(f"exporter failed on {event} after {seconds:.3f}s")

    remove_broken = pool.add_listener(broken_listener)  # its failures are logged

    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, release.wait, 30)  # occupies the only worker
        with anyio.fail_after(10):
            while pool.statistics().running < 1:
                await anyio.sleep(0.01)
        # A queued password call whose caller times out (expired while queued).
        await leaks.raises("timeout", lambda: ph.averify(MARKER, stored, timeout=0.05))
        # Fill the one queue slot, be refused, then cancel the queued caller.
        async with anyio.create_task_group() as queued_group:
            queued_group.start_soon(functools.partial(ph.averify, MARKER, stored))
            with anyio.fail_after(10):
                while pool.statistics().queued < 1:
                    await anyio.sleep(0.01)
            leaks.check("queue repr", pool._queue)
            leaks.check("queued call", next(iter(pool._queue)))
            leaks.check("pool while queued", pool)
            overloaded = await leaks.raises("overloaded", lambda: ph.averify(MARKER, stored))
            assert isinstance(overloaded, Overloaded)
            leaks.check("overloaded pickled", pickle.loads(pickle.dumps(overloaded)))  # noqa: S301 - our own object
            queued_group.cancel_scope.cancel()
        release.set()
    # Cancellation of a running password call.
    slow = PasswordHash([*cheap_hashers()], pool=pool)
    async with anyio.create_task_group() as tg:
        tg.start_soon(slow.averify, MARKER, stored)
        await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    # A closed pool.
    pool.close()
    await leaks.raises("closed", lambda: ph.averify(MARKER, stored))
    leaks.raises_sync("closed nowait", pool.check_admission)
    leaks.check("statistics", pool.statistics())
    leaks.check("listener events", events)
    remove()
    remove_broken()
    assert any(r.name == "loopsafe.pool" for r in leaks.records), "the listener failure was logged"
    leaks.assert_clean()


async def test_lag_monitor_and_default_pool_never_show_the_password(leaks):
    """LoopLagMonitor, its snapshot and samples, and the default pool around a password call."""
    ph = PasswordHash(cheap_hashers())
    async with LoopLagMonitor() as lag:
        stored = await ph.ahash(MARKER)
        assert await ph.averify(MARKER, stored)
    for label, obj in (
        ("monitor", lag),
        ("snapshot", lag.snapshot()),
        ("snapshot ms", lag.snapshot().as_ms()),
        ("samples", lag.samples()[:50]),
        ("default pool", default_pool()),
        ("default statistics", default_pool().statistics()),
    ):
        leaks.check(label, obj)
    leaks.assert_clean()


def test_asyncio_debug_mode_never_shows_the_password(leaks):
    """With asyncio debug on (slow callbacks, destroyed tasks logged), nothing logs the password."""
    ph = PasswordHash(cheap_hashers())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 0.0  # log every callback as slow
        stored = await ph.ahash(MARKER)
        await ph.averify(MARKER, stored)
        task = asyncio.ensure_future(ph.averify(MARKER, stored))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main(), debug=True)
    leaks.assert_clean()


LOOPSAFE_SOURCE = pathlib.Path(loopsafe.__file__).parent


def _loopsafe_frame_leaks(exc: BaseException) -> list[str]:
    """Locals of loopsafe frames in ``exc``'s traceback chain that show the marker.

    Variables named ``password`` are what error reporters scrub by name; any
    other name (``args``, ``call``, a closure) would be sent as it is.
    """
    found = []
    for linked in iter_exception_chain(exc):
        tb = linked.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if pathlib.Path(frame.f_code.co_filename).is_relative_to(LOOPSAFE_SOURCE):
                for name, value in frame.f_locals.items():
                    if name != "password" and MARKER in repr(value):
                        found.append(f"{frame.f_code.co_qualname}: {name} = {value!r}"[:200])
            tb = tb.tb_next
    return found


async def test_loopsafe_frames_hold_the_password_only_as_password():
    """Overloaded, a deadline and a failing hash: no loopsafe frame keeps it under another name."""
    import anyio

    pool = HashPool(1, max_pending=1, max_queue_wait=None, name="secrets-frames")
    ph = facade_for(cheap_hashers()[0].algorithm, pool=pool)
    stored = ph.hash(MARKER)
    release = threading.Event()
    caught: list[BaseException] = []

    def failing(secret: str) -> None:
        raise RuntimeError("the hash failed")  # its frame names the password `secret`

    async def catch(make: Callable[[], Awaitable[object]]) -> None:
        try:
            await make()
        except Exception as exc:  # noqa: BLE001 - each is inspected
            caught.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pool.run, release.wait, 30)  # occupies the only worker
        with anyio.fail_after(10):
            while pool.statistics().running < 1:
                await anyio.sleep(0.01)
        await catch(lambda: pool.run(ph.verify, MARKER, stored, timeout=0.05))  # expires queued
        await catch(lambda: ph.averify(MARKER, stored, timeout=0.05))
        async with anyio.create_task_group() as queued:
            queued.start_soon(functools.partial(pool.run, ph.verify, MARKER, stored))
            with anyio.fail_after(10):
                while pool.statistics().queued < 1:
                    await anyio.sleep(0.01)
            await catch(lambda: pool.run(ph.verify, MARKER, stored))  # Overloaded
            queued.cancel_scope.cancel()
        release.set()
    await catch(lambda: pool.run(failing, MARKER))  # raised in the worker, re-raised here
    pool.close()
    assert [type(exc).__name__ for exc in caught] == [
        "TimeoutError",
        "TimeoutError",
        "Overloaded",
        "RuntimeError",
    ]
    leaked = [leak for exc in caught for leak in _loopsafe_frame_leaks(exc)]
    assert not leaked, "\n".join(leaked)


# -- the Django functions, in a child so settings stay out of this process ------------

DJANGO_CHILD = textwrap.dedent(
    """
    import asyncio, json, logging, sys, traceback
    marker = sys.argv[1]
    import django
    from django.conf import settings
    settings.configure(
        SECRET_KEY="x" * 50,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        DATABASES={},
        PASSWORD_HASHERS=[
            "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            "django.contrib.auth.hashers.Argon2PasswordHasher",
            "django.contrib.auth.hashers.MD5PasswordHasher",
        ],
        LOGGING_CONFIG=None,
    )
    django.setup()
    records = []
    class Capture(logging.Handler):
        def emit(self, record):
            records.append(self.format(record) + repr(record.args))
    logging.getLogger().addHandler(Capture(logging.DEBUG))
    logging.getLogger().setLevel(logging.DEBUG)
    import loopsafe.django as ld
    from django.contrib.auth.hashers import make_password
    # Django's password API names and their async twins; other exports are only repr'd.
    PASSWORD_FUNCTIONS = {
        "check_password", "acheck_password", "make_password", "amake_password",
        "verify_password", "averify_password", "is_password_usable", "identify_hasher",
    }
    texts, names = [], []
    async def main():
        stored = make_password(marker)
        for name in sorted(getattr(ld, "__all__", [])):
            fn = getattr(ld, name)
            texts.append(repr(fn))
            if name not in PASSWORD_FUNCTIONS or not callable(fn):
                continue
            for args in ((marker,), (marker, stored), (marker, "md5$x$y"), (marker, "!")):
                try:
                    value = fn(*args)
                    if asyncio.iscoroutine(value):
                        value = await value
                    texts.append(repr(value))
                    names.append(name)
                except Exception as exc:
                    texts.append(repr(exc) + repr(exc.args))
                    texts.append("".join(traceback.format_exception(exc)))
    asyncio.run(main())
    texts.extend(records)
    leaked = [t[:300] for t in texts if marker in t]
    print(json.dumps({"called": sorted(set(names)), "texts": len(texts), "leaked": leaked}))
    """
)


def test_django_functions_never_show_the_password():
    """Every public function of loopsafe.django, fed the marker, logs and shows nothing of it."""
    pytest.importorskip("django")
    try:
        import loopsafe.django  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"loopsafe.django does not import yet: {exc}")
    result = run_child(DJANGO_CHILD, MARKER, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    report(f"django: called {figures['called']}, {figures['texts']} texts scanned")
    if not figures["called"]:
        pytest.skip("loopsafe.django exports none of Django's password functions by name")
    assert not figures["leaked"], figures["leaked"]


def test_the_leak_detector_finds_a_leak():
    """The checker itself: a marker in a repr, an exception's args or a log record is found."""
    found = Leaks(MARKER)
    found.check("plain", "nothing here")
    found.assert_clean()
    found.check("exception", ValueError("x", MARKER))
    with pytest.raises(AssertionError, match="leaked"):
        found.assert_clean()
    logged = Leaks(MARKER)
    logged.records.append(logging.LogRecord("t", logging.INFO, __file__, 1, "%s", (MARKER,), None))
    with pytest.raises(AssertionError, match="leaked"):
        logged.assert_clean()
