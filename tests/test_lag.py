"""LoopLagMonitor: the ticker that proves the loop was (or was not) blocked."""

from __future__ import annotations

import time

import anyio
import pytest

from loopsafe import LoopLagMonitor

pytestmark = pytest.mark.anyio


async def test_a_stall_right_after_start_is_measured():
    """The ticker has its first timestamp when ``start`` returns, on every backend."""
    lag = LoopLagMonitor()
    await lag.start()
    time.sleep(0.15)  # noqa: ASYNC251 - blocks the loop before the ticker could run again
    await lag.stop()
    assert lag.max_lag >= 0.14
    assert lag.snapshot().max >= 0.14


async def test_a_stall_that_ends_the_watched_code_is_measured():
    """A block just before the monitor stops is recorded, not lost with the pending tick."""
    async with LoopLagMonitor() as lag:
        await anyio.sleep(0.03)
        time.sleep(0.15)  # noqa: ASYNC251 - the block being measured
    assert lag.count >= 2
    assert lag.snapshot().max >= 0.14


async def test_a_free_loop_shows_small_lag():
    """Without a block, every tick comes about on time (a loose bound: shared machines)."""
    async with LoopLagMonitor(interval=0.002) as lag:
        await anyio.sleep(0.1)
    assert lag.count >= 10
    assert lag.snapshot().p50 < 0.05


async def test_stop_twice_and_restart():
    """``stop`` is idempotent; a stopped monitor can start again and keeps counting."""
    lag = LoopLagMonitor(keep_all=False, window=10)
    await lag.start()
    with pytest.raises(RuntimeError, match="already running"):
        await lag.start()
    await anyio.sleep(0.02)
    await lag.stop()
    await lag.stop()
    first = lag.count
    async with lag:
        await anyio.sleep(0.02)
    assert lag.count > first
    assert len(lag.samples()) == 0  # keep_all=False keeps only the window
    assert lag.recent().samples <= 10


def test_interval_must_be_positive():
    """A zero interval would spin the loop: refused."""
    with pytest.raises(ValueError, match="positive"):
        LoopLagMonitor(interval=0)
