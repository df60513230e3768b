"""What every server benchmark does: start a server, send a login burst, probe /health, summarize.

The scripts in ``benchmarks/`` and the command line share these helpers, so a
server is started, waited for and stopped the same way everywhere, and every
percentile is the same nearest-rank percentile (``loopsafe._lag.percentile``,
the one docs/measuring.md defines):

- `free_port`, `wait_ready`, `serving`, `started`, `stop`: a server
  subprocess on 127.0.0.1, on a port that was free a moment ago, waited for
  (bounded: until it accepts connections, or until a readiness URL answers
  200) and stopped by its pid when the block ends;
- `run_burst`: the burst client (`loopsafe.cli._burst`) in its own process,
  against a server: one user signs up, then N logins at once while /health is
  probed every 10 ms; the server process's CPU share during the burst;
- `cpu_per_call`: CPU seconds of one synchronous call (median after a warm-up);
- `rotations`: the variants' order per round, rotated so none always goes first;
- `median_of`: the median over rounds of one figure;
- `open_loop`: start each call of a schedule (Poisson arrivals) at its time,
  whether or not the earlier ones were answered;
- `load_line`, `cores_line`: the usable cores and the load average printed
  next to every figure.

Benchmarks may import the command line; nothing here imports a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

from loopsafe._lag import percentile
from loopsafe._settings import usable_cpus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "BURST_LIMIT",
    "MAX_PROBES",
    "PROBE_EVERY",
    "START_LIMIT",
    "burst_line",
    "burst_table",
    "cores_line",
    "cpu_per_call",
    "free_port",
    "load_line",
    "median_of",
    "open_loop",
    "percentile",
    "rotations",
    "run_burst",
    "run_bursts",
    "serving",
    "started",
    "stop",
    "usable_cpus",
    "uvicorn",
    "wait_ready",
]

_T = TypeVar("_T")

#: Seconds between two /health probes.
PROBE_EVERY: Final = 0.01
#: Most probes one burst may send.
MAX_PROBES: Final = 3000
#: Seconds one burst may take, at the most.
BURST_LIMIT: Final = 120.0
#: Seconds a server may take to accept connections.
START_LIMIT: Final = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    port: int,
    server: subprocess.Popen[Any],
    limit: float = START_LIMIT,
    *,
    url: str | None = None,
    log: Path | None = None,
) -> None:
    """Wait (at most ``limit`` seconds) until the server is ready.

    Ready means: it accepts connections on ``port``, or, with ``url``, a GET
    of ``url`` answers 200 (``port`` is then unused).

    Args:
        port: The server's port on 127.0.0.1.
        server: The server's process, watched for an early exit.
        limit: Seconds to wait, at the most.
        url: A readiness URL (``http://127.0.0.1:PORT/health``).
        log: The server's output file, whose tail goes into the error if it exits.

    Raises:
        RuntimeError: If the server exits first, or is not ready in time.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = "" if log is None else ":\n" + log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the server exited at start-up (status {server.returncode}){tail}")
        if _ready(port, url):
            return
        time.sleep(0.1)
    what = "accept connections" if url is None else f"answer 200 at {url}"
    raise RuntimeError(f"the server did not {what} within {limit:g} s")


def _ready(port: int, url: str | None) -> bool:
    if url is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200  # noqa: PLR2004 - HTTP OK
    except httpx.HTTPError:
        return False


def stop(server: subprocess.Popen[Any], timeout: float = 30) -> int | None:
    """Terminate ``server`` (by its pid), and kill it if it does not exit within ``timeout`` s.

    Returns:
        Its exit status if it had exited before (a crash, an OOM kill), else None.
    """
    if server.poll() is not None:
        return server.returncode
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    return None


@contextlib.contextmanager
def started(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str,
    log: Path,
    ready: str,
    limit: float = START_LIMIT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (any program) for the block, its output to ``log``; yield its process.

    The block starts once a GET of ``ready`` answers 200; the process is
    stopped by its pid when the block ends.
    """
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - the caller's fixed arguments
            list(argv), cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(0, process, limit, url=ready, log=log)
            yield process
        finally:
            stop(process)


@contextlib.contextmanager
def serving(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str,
    port: int | None = None,
    quiet: bool = False,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``python ARGV... PORT`` for the block; yield its base URL and its process.

    Args:
        argv: Arguments after the interpreter; the port is appended last
            (``-m uvicorn module:app --host 127.0.0.1 --port``).
        env: The server's environment.
        cwd: Its working directory.
        port: The port (default: a free one).
        quiet: Discard the server's standard error (one warning per refused login).
    """
    port = free_port() if port is None else port
    server = subprocess.Popen(  # noqa: S603 - this interpreter, the caller's fixed arguments
        [sys.executable, *argv, str(port)],
        cwd=cwd,
        env=dict(env),
        stderr=subprocess.DEVNULL if quiet else None,
    )
    try:
        wait_ready(port, server)
        yield f"http://127.0.0.1:{port}", server
    finally:
        stop(server)


def uvicorn(target: str, *, log_level: str = "warning", access_log: bool = True) -> list[str]:
    """Return the arguments that serve the ASGI app ``target`` with uvicorn (port last)."""
    argv = ["-m", "uvicorn", target, "--host", "127.0.0.1", "--log-level", log_level]
    return [*argv, *([] if access_log else ["--no-access-log"]), "--port"]


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def run_burst(
    base: str,
    server_pid: int,
    *,
    logins: int,
    signup: str = "/signup",
    login: str = "/login",
    form: bool = False,
    username: str = "ada",
) -> dict[str, float]:
    """Sign one user up, send ``logins`` logins at once and probe /health; return the figures.

    The client (`loopsafe.cli._burst`) runs in its own process, so its loop is
    not the server's. The server's CPU seconds are read after the sign-up and
    after the burst.

    Args:
        base: The server's base URL.
        server_pid: The server process, whose CPU share is measured.
        logins: Logins sent at once.
        signup: The path that creates the user (JSON ``{"username"|"email", "password"}``).
        login: The login path.
        form: Send the login as a form (``username``, ``password``) instead of JSON.
        username: The user's name (an e-mail address for fastapi-users).

    Returns:
        ``probes``, ``p50_ms``, ``p99_ms``, ``max_ms`` of /health; ``ok`` and
        ``refused_503`` logins; ``burst_s``; ``cpu_share`` of the server
        (CPU seconds / (burst seconds x usable cores)).

    Raises:
        RuntimeError: If the sign-up fails.
    """
    argv = [sys.executable, "-m", "loopsafe.cli._burst", base, str(logins), signup, login]
    argv += [username, "form" if form else "json", str(PROBE_EVERY), str(MAX_PROBES)]
    argv.append(str(BURST_LIMIT))
    client = subprocess.Popen(  # noqa: S603 - this interpreter and our own client module
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        if client.stdin is None or client.stdout is None:  # pragma: no cover - PIPE above
            raise RuntimeError("the burst client has no pipes")
        if client.stdout.readline().strip() != "signed-up":
            raise RuntimeError("the burst client failed to sign its user up")
        cpu_before = _cpu_seconds(server_pid)
        client.stdin.write("go\n")
        client.stdin.flush()
        line = client.stdout.readline()
        cpu_used = _cpu_seconds(server_pid) - cpu_before
        client.wait(timeout=BURST_LIMIT + 30)
    finally:
        stop(client)
    data = json.loads(line)
    lat = [x * 1000 for x in data["lat"]]
    return {
        "probes": len(lat),
        "p50_ms": statistics.median(lat),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
        "ok": data["statuses"].count(200),
        "refused_503": data["statuses"].count(503),
        "burst_s": data["burst"],
        "cpu_share": cpu_used / (data["burst"] * usable_cpus()),
    }


def cpu_per_call(fn: Callable[..., object], *args: object, repeat: int = 3) -> float:
    """Return the CPU seconds of one ``fn(*args)``: process time, median after a warm-up."""
    fn(*args)
    costs = []
    for _ in range(repeat):
        start = time.process_time()
        fn(*args)
        costs.append(time.process_time() - start)
    return statistics.median(costs)


async def open_loop(arrivals: Sequence[float], send: Callable[[int], Awaitable[_T]]) -> list[_T]:
    """Start ``send(i)`` at ``arrivals[i]`` seconds from now; return every result, in order.

    Open loop: a slow answer never delays the next arrival, as with real
    users (docs/measuring.md).
    """
    start = time.perf_counter()
    tasks: list[asyncio.Task[_T]] = []
    for number, at in enumerate(arrivals):
        delay = start + at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(number)))
    return list(await asyncio.gather(*tasks))


def rotations(names: Sequence[str], rounds: int) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(round, order)``: ``names`` rotated by one more place each round."""
    for number in range(rounds):
        shift = number % len(names)
        yield number, [*names[shift:], *names[:shift]]


def median_of(runs: Sequence[Mapping[str, float]], key: str) -> float:
    """Return the median over ``runs`` of the figure ``key``."""
    return statistics.median(run[key] for run in runs)


def load_line() -> str:
    """Return ``N usable cores (of M), load average A B C``: what every figure stands next to."""
    one, five, fifteen = os.getloadavg()
    return (
        f"{usable_cpus()} usable cores (of {os.cpu_count()}), "
        f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    )


def cores_line(what: str) -> str:
    """Return the header line every benchmark prints: date, cores, load, Python, ``what``."""
    import datetime as dt

    today = dt.datetime.now(tz=dt.timezone.utc)
    return f"# {today:%Y-%m-%d}, {load_line()}, Python {sys.version.split()[0]}; {what}"


def burst_line(number: int, variant: str, figures: Mapping[str, float]) -> str:
    """Return one round's line of a burst benchmark: /health, logins, burst time, server CPU."""
    return (
        f"round {number + 1} {variant:>20}: /health p50 {figures['p50_ms']:7.1f} ms "
        f"p99 {figures['p99_ms']:7.1f} ms max {figures['max_ms']:7.1f} ms "
        f"({figures['probes']:.0f} probes); logins 200={figures['ok']:.0f} "
        f"503={figures['refused_503']:.0f}; burst {figures['burst_s']:.2f} s; "
        f"server CPU share {figures['cpu_share']:.2f}"
    )


def burst_table(results: Mapping[str, Sequence[Mapping[str, float]]]) -> str:
    """Return the Markdown table of the medians over rounds, one row per variant."""
    rows = [
        (
            "| variant | /health p50 | /health p99 | /health max | logins 200 / 503 | burst "
            "| server CPU share |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for variant, runs in results.items():

        def med(key: str, runs: Sequence[Mapping[str, float]] = runs) -> float:
            return median_of(runs, key)

        rows.append(
            f"| {variant} | {med('p50_ms'):.1f} ms | {med('p99_ms'):.1f} ms | "
            f"{med('max_ms'):.1f} ms | {med('ok'):.0f} / {med('refused_503'):.0f} | "
            f"{med('burst_s'):.2f} s | {med('cpu_share'):.2f} |"
        )
    return "\n".join(rows)


def run_bursts(
    variants: Sequence[str],
    rounds: int,
    one: Callable[[str], dict[str, float]],
) -> dict[str, list[dict[str, float]]]:
    """Run ``one(variant)`` for every variant, ``rounds`` times in rotated order; print as it goes.

    Returns:
        Each variant's figures, one per round.
    """
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for number, order in rotations(variants, rounds):
        for variant in order:
            figures = one(variant)
            results[variant].append(figures)
            sys.stdout.write(burst_line(number, variant, figures) + "\n")
            sys.stdout.flush()
    sys.stdout.write("\nmedian over rounds:\n" + burst_table(results) + "\n")
    return results
