"""A pytest plugin that fails a test when the event loop was blocked longer than a bound.

Loaded by pytest through the ``loopsafe`` ``pytest11`` entry point wherever
loopsafe is installed, so importing this module starts nothing: no task, no
thread, no pool. It provides:

- `assert_loop_responsive`, an async context manager that measures loop lag
  with a `LoopLagMonitor` while its block runs and raises `LoopBlocked` (an
  `AssertionError`) naming the worst stall when the lag passed the bound::

      async with assert_loop_responsive(max_lag=0.05):
          await login(client)

- the ``assert_loop_responsive`` fixture, the same callable for tests that
  prefer fixtures to imports;
- the ``@pytest.mark.loop_responsive(max_lag=0.05, interval=0.005)`` marker,
  which runs a whole async test (anyio's or pytest-asyncio's) inside
  `assert_loop_responsive`;
- the ``loopsafe_max_lag`` ini option: the default bound, in seconds, for the
  fixture and the marker (0.05 unless set).

It works on asyncio, uvloop and trio.
"""

from __future__ import annotations

import functools
import gc
import inspect
import time
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

from loopsafe._lag import LoopLagMonitor
from loopsafe._waiting import sleep

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator
    from types import TracebackType

__all__ = ["LoopBlocked", "assert_loop_responsive"]

#: Default bound on loop lag, in seconds: far above a healthy loop's lag (well
#: under a millisecond) and below one modern password hash (100 ms and more).
DEFAULT_MAX_LAG = 0.05
#: Default ticker interval, in seconds (the loop-lag measure of docs/measuring.md).
DEFAULT_INTERVAL = 0.005
#: Longest wait, in seconds, for the ticker's closing sample at the end of a block.
_CLOSING_TICK_BOUND = 5.0

_MARKER = "loop_responsive"
_INI_MAX_LAG = "loopsafe_max_lag"


class LoopBlocked(AssertionError):
    """The event loop was blocked longer than the bound while a checked block ran.

    Attributes:
        max_lag: The worst stall, in seconds.
        at: When the worst stall ended, in seconds since the block started.
        bound: The bound it passed, in seconds.
        stalls: Samples over the bound, as ``(seconds since start, lag)``.
        duration: How long the block ran, in seconds.
    """

    def __init__(
        self,
        max_lag: float,
        *,
        at: float,
        bound: float,
        stalls: list[tuple[float, float]],
        duration: float,
    ) -> None:
        """Describe the worst stall and how many others passed the bound."""
        self.max_lag = max_lag
        self.at = at
        self.bound = bound
        self.stalls = stalls
        self.duration = duration
        blocked = sum(lag for _, lag in stalls)
        super().__init__(
            f"the event loop was blocked for {max_lag * 1000:.1f} ms "
            f"(bound {bound * 1000:.1f} ms); the worst stall ended {at:.3f} s into the "
            f"block; {len(stalls)} stall(s) over the bound, {blocked:.3f} s blocked in all, "
            f"in a block of {duration:.3f} s"
        )


class _ResponsiveCheck(AbstractAsyncContextManager[LoopLagMonitor]):
    """The context manager behind `assert_loop_responsive`."""

    def __init__(self, max_lag: float, interval: float) -> None:
        if not max_lag > 0:
            raise ValueError("max_lag must be a positive number of seconds")
        self.max_lag = max_lag
        self.monitor = LoopLagMonitor(interval, keep_all=True)
        self._started = 0.0
        self._offset = 0.0

    async def _wait_for_sample(self, count: int) -> None:
        """Sleep until the ticker has recorded more than ``count`` samples (bounded)."""
        monitor = self.monitor
        deadline = time.monotonic() + _CLOSING_TICK_BOUND
        while monitor.count <= count and time.monotonic() < deadline:
            await sleep(monitor.interval / 2)

    async def __aenter__(self) -> LoopLagMonitor:
        # A full collection of earlier garbage (in a long test session, hundreds
        # of milliseconds) is not the block's doing: run it before measuring.
        gc.collect()
        await self.monitor.start()
        # The first sample proves the ticker is asleep with its clock read, so a
        # block that stalls the loop from its very first line is still measured.
        try:
            await self._wait_for_sample(0)
        except BaseException:
            await self.monitor.stop()
            raise
        # Sample times count from the ticker's start; the block starts now.
        first = self.monitor.samples()
        self._offset = first[-1][0] if first else 0.0
        self.monitor.reset()
        self._started = time.perf_counter()
        return self.monitor

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True  # pytest shows the test's ``async with`` line instead
        duration = time.perf_counter() - self._started
        try:
            if exc_type is None:
                # A block that stalled the loop just before its end: the ticker
                # has not woken up yet. Its next sample measures that stall.
                await self._wait_for_sample(self.monitor.count)
        finally:
            await self.monitor.stop()
        if exc_type is not None:
            return  # the block's own exception says more than its loop lag
        stalls = [
            (max(at - self._offset, 0.0), lag)
            for at, lag in self.monitor.samples()
            if lag > self.max_lag
        ]
        if stalls:
            at, worst = max(stalls, key=lambda sample: sample[1])
            raise LoopBlocked(
                worst,
                at=at,
                bound=self.max_lag,
                stalls=stalls,
                duration=duration,
            )


def assert_loop_responsive(
    max_lag: float = DEFAULT_MAX_LAG,
    *,
    interval: float = DEFAULT_INTERVAL,
) -> AbstractAsyncContextManager[LoopLagMonitor]:
    """Fail if the event loop is blocked longer than ``max_lag`` while the block runs.

    A ticker task sleeps ``interval`` seconds in a loop and measures how late it
    wakes (see `LoopLagMonitor`); the block's end waits for one more tick, so a
    stall on the block's last line counts too. Garbage is collected once
    before the block, so that a collection of what earlier tests left behind
    does not count against it. If the block raises, its own exception
    propagates and the lag is not checked.

    Args:
        max_lag: The bound, in seconds.
        interval: The ticker's sleep, in seconds.

    Returns:
        An async context manager; ``as`` gives the `LoopLagMonitor`, whose
        samples stay readable after the block.

    Raises:
        LoopBlocked: On exit, if any sample passed ``max_lag``.
        ValueError: If ``max_lag`` or ``interval`` is not positive.
    """
    return _ResponsiveCheck(max_lag, interval)


# -- the pytest plugin ----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``loopsafe_max_lag`` ini option."""
    parser.addini(
        _INI_MAX_LAG,
        "loopsafe: default bound on event-loop lag, in seconds, for the "
        "assert_loop_responsive fixture and the loop_responsive marker",
        default=str(DEFAULT_MAX_LAG),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``loop_responsive`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(max_lag=None, interval={DEFAULT_INTERVAL}): fail this async test if "
        "its event loop is blocked longer than max_lag seconds (default: the "
        f"{_INI_MAX_LAG} ini option, {DEFAULT_MAX_LAG})",
    )


def _default_max_lag(config: pytest.Config) -> float:
    raw = config.getini(_INI_MAX_LAG)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"{_INI_MAX_LAG} must be a number of seconds, not {raw!r}"
        ) from None
    if not value > 0:
        raise pytest.UsageError(f"{_INI_MAX_LAG} must be positive, not {raw!r}")
    return value


@pytest.fixture(name="assert_loop_responsive")
def _assert_loop_responsive_fixture(
    pytestconfig: pytest.Config,
) -> Callable[..., AbstractAsyncContextManager[LoopLagMonitor]]:
    """`assert_loop_responsive`, defaulting to the ``loopsafe_max_lag`` ini option."""
    default = _default_max_lag(pytestconfig)

    def check(
        max_lag: float | None = None, *, interval: float = DEFAULT_INTERVAL
    ) -> AbstractAsyncContextManager[LoopLagMonitor]:
        return assert_loop_responsive(default if max_lag is None else max_lag, interval=interval)

    return check


def _marker_bounds(
    max_lag: float | None = None, *, interval: float = DEFAULT_INTERVAL
) -> tuple[float | None, float]:
    return max_lag, interval


def _checked(
    test: Callable[..., Any], max_lag: float, interval: float
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(test)
    async def checked(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - whatever the test returns
        __tracebackhide__ = True
        async with assert_loop_responsive(max_lag, interval=interval):
            return await test(*args, **kwargs)

    return checked


def _refused(test: Callable[..., Any]) -> Callable[..., None]:
    @functools.wraps(test)
    def refused(*_args: object, **_kwargs: object) -> None:
        pytest.fail(f"@pytest.mark.{_MARKER} applies to async tests only", pytrace=False)

    return refused


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Run a ``loop_responsive`` test inside `assert_loop_responsive`.

    The test function is swapped for a checked one just for this call, before
    anyio's or pytest-asyncio's runner picks it up, and put back afterwards.
    """
    __tracebackhide__ = True
    marker = item.get_closest_marker(_MARKER)
    if marker is None or not isinstance(item, pytest.Function):
        return (yield)
    try:
        max_lag, interval = _marker_bounds(*marker.args, **marker.kwargs)
    except TypeError as exc:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER}: {exc}") from None
    original = item.obj
    if inspect.iscoroutinefunction(original):
        bound = _default_max_lag(item.config) if max_lag is None else max_lag
        item.obj = _checked(original, bound, interval)
    else:
        item.obj = _refused(original)
    try:
        return (yield)
    finally:
        item.obj = original
