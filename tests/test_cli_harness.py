"""The benchmark harness: servers started, waited for and stopped by pid; open-loop schedules."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from loopsafe.cli import _harness as harness

if TYPE_CHECKING:
    from pathlib import Path


def http_server(port: int) -> list[str]:
    """The standard library's HTTP server on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


def test_started_waits_for_the_ready_url_and_stops_the_server_by_its_pid(tmp_path: Path) -> None:
    """The block starts once the URL answers 200; afterwards the process has exited."""
    port = harness.free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    with harness.started(
        http_server(port), env=os.environ, cwd=tmp_path, log=log, ready=url, limit=30
    ) as process:
        assert httpx.get(url, timeout=5).status_code == 200
        assert process.poll() is None
    assert process.poll() is not None
    assert "GET / " in log.read_text()


def test_wait_ready_reports_a_server_that_exits_with_its_log(tmp_path: Path) -> None:
    """A server that dies at start-up raises at once, with its status and its output's tail."""
    log = tmp_path / "server.log"
    argv = [sys.executable, "-c", "import sys; print('no such app'); sys.exit(3)"]
    dead = "http://127.0.0.1:9/"
    with (
        pytest.raises(RuntimeError, match=r"status 3\)[\s\S]*no such app"),
        harness.started(argv, env=os.environ, cwd=tmp_path, log=log, ready=dead),
    ):
        pass  # pragma: no cover - never reached


def test_wait_ready_on_a_port_gives_up_after_its_limit() -> None:
    """A process that never listens is waited for at most ``limit`` seconds."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        begun = time.monotonic()
        with pytest.raises(RuntimeError, match=r"did not accept connections within 0\.5 s"):
            harness.wait_ready(harness.free_port(), sleeper, 0.5)
        assert time.monotonic() - begun < 5
    finally:
        assert harness.stop(sleeper) is None


def test_stop_returns_the_status_of_a_server_that_had_already_died() -> None:
    """Stopping a crashed (or OOM-killed) server reports how it died; a live one gives None."""
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    crashed.wait(timeout=30)
    assert harness.stop(crashed) == 7


def test_open_loop_starts_each_call_at_its_time_whatever_the_answers() -> None:
    """A slow call never delays the next arrival; results come back in schedule order."""
    started_at: list[float] = []

    async def run() -> list[int]:
        begun = time.perf_counter()

        async def send(number: int) -> int:
            started_at.append(time.perf_counter() - begun)
            await asyncio.sleep(0.3)  # answered long after the next arrival
            return number

        return await harness.open_loop([0.0, 0.05, 0.1], send)

    assert asyncio.run(run()) == [0, 1, 2]
    assert started_at[2] < 0.25


def test_load_line_names_the_usable_cores_and_the_load_average() -> None:
    """The line printed next to every figure carries the cores and the three load averages."""
    line = harness.load_line()
    assert line.startswith(f"{harness.usable_cpus()} usable cores (of {os.cpu_count()})")
    assert len(line.split("load average ")[1].split()) == 3
    header = harness.cores_line("a burst")
    assert "usable cores" in header
    assert "load average" in header
    assert header.endswith("; a burst")
