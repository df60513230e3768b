r"""An Argon2 login burst against servers in a memory-limited cgroup: who gets OOM-killed.

A pod with a memory limit, Django's default Argon2 (t=2, m=102400 KiB, p=8:
100 MiB per hash) and a burst of logins. Each variant of
``memory_cgroup_app.py`` (stock Django ``acheck_password``, pwdlib through
``run_in_executor(None, ...)``, loopsafe's drop-in with default settings)
runs alone under uvicorn in a fresh cgroup v1 memory group (``--limit-mib``,
swap off for the group: ``memory.swappiness`` 0 and ``memory.memsw.limit_in_bytes``
equal to the limit) and a cpu group with a 2-CPU quota; this process, outside
both, sends one login (``--cold``: none) and then ``--logins`` concurrent
logins over 127.0.0.1, and counts for the burst:

- served: 200 with the right answer;
- refused: a final 503 with a ``Retry-After`` header (an answer the client
  can act on; ``--retries N``: the client waits that long and tries again, up
  to N times, and ``retried`` counts those 503s);
- wrongly denied: 401 for the right password (a hash that failed quietly);
- lost: a reset or closed connection, a timeout, or any other 5xx;
- OOM kills: the group's ``memory.oom_control`` ``oom_kill`` count, and the
  server's exit status (-9: SIGKILL);
- peak: the group's ``memory.max_usage_in_bytes``; ``failcnt``: how often it
  hit the limit.

``--cpu-count 16`` makes ``os.cpu_count()`` answer 16 in the servers (what it
answers in a 2-CPU pod on a 16-core node: neither the quota nor the affinity of
the pod changes it), so asyncio's default executor has ``min(32, 16 + 4) = 20``
threads, as there. loopsafe does not read ``os.cpu_count()``: it sizes from the
CPU quota and affinity (2 here, 2 on that node) and from the memory limit.

Needs Linux with cgroup v1 memory and cpu controllers mounted under
``/sys/fs/cgroup`` and root (`unavailable_reason` says why not). Run under
``flock`` on a shared machine; the variants run one at a time::

    flock /tmp/loopsafe-bench.lock python benchmarks/memory_cgroup.py \\
        --json benchmarks/results/memory-cgroup.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loopsafe.cli import _harness as harness

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
CGROUP = Path("/sys/fs/cgroup")
MIB = 1024 * 1024
PASSWORD = "correct horse battery staple"
VARIANTS = ("django", "pwdlib", "loopsafe")

__all__ = [
    "Outcome",
    "make_encoded",
    "run_variant",
    "unavailable_reason",
]


def unavailable_reason() -> str | None:
    """Why a memory cgroup cannot be made here, or None when it can."""
    if sys.platform != "linux":
        return f"cgroup memory limits are Linux only (this is {sys.platform})"
    if not (CGROUP / "memory" / "memory.limit_in_bytes").exists():
        return "no cgroup v1 memory controller at /sys/fs/cgroup/memory (cgroup v2 or none)"
    if os.geteuid() != 0:
        return "making a cgroup needs root"
    probe = CGROUP / "memory" / f"loopsafe-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot create a memory cgroup: {exc.strerror}"
    probe.rmdir()
    return None


class Group:
    """One cgroup v1 directory of one controller, removed on exit."""

    def __init__(self, controller: str, name: str) -> None:
        self.path = CGROUP / controller / name
        self.path.mkdir()

    def write(self, name: str, value: object) -> bool:
        """Write a control file; False where this kernel lacks it."""
        try:
            (self.path / name).write_text(f"{value}\n")
        except FileNotFoundError:
            return False
        return True

    def read(self, name: str) -> str:
        """Read a control file."""
        return (self.path / name).read_text()

    def remove(self) -> None:
        """Remove the group once its processes are gone (the kernel needs a moment)."""
        for _ in range(100):
            if not self.path.exists():
                return
            with contextlib.suppress(OSError):
                self.path.rmdir()
                return
            time.sleep(0.05)
        print(f"warning: could not remove {self.path}", file=sys.stderr)


@dataclass
class Outcome:
    """What one variant's burst came to."""

    variant: str
    cpu_count: str
    logins: int
    executor_threads: int | None = None
    loopsafe_workers: int | None = None
    served: int = 0
    refused: int = 0
    refused_without_retry_after: int = 0
    wrongly_denied: int = 0
    lost: int = 0
    lost_kinds: dict[str, int] = field(default_factory=dict)
    oom_kills: int = 0
    failcnt: int = 0
    peak_mib: float = 0.0
    limit_mib: int = 0
    exit_status: int | None = None
    seconds: float = 0.0
    limits_seen: str | None = None
    warm_up_served: int | None = None
    retried: int = 0


def make_encoded(time_cost: int, memory_kib: int, parallelism: int) -> str:
    """A Django-format Argon2 hash of `PASSWORD` at the given cost."""
    import argon2  # noqa: PLC0415 - only the benchmark's parent needs it

    hasher = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
    )
    return "argon2" + hasher.hash(PASSWORD)


def _health(port: int, server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait (bounded) until the server's /health answers 200; return what it says."""
    import httpx  # noqa: PLC0415

    url = f"http://127.0.0.1:{port}/health"
    harness.wait_ready(port, server, url=url)
    data: dict[str, Any] = httpx.get(url, timeout=5).json()
    return data


async def _burst(
    port: int, logins: int, timeout: float, outcome: Outcome, retries: int = 0
) -> None:
    import httpx  # noqa: PLC0415

    limits = httpx.Limits(max_connections=logins, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def one() -> None:
            try:
                for attempt in range(retries + 1):
                    response = await client.post(
                        f"http://127.0.0.1:{port}/login", content=PASSWORD.encode()
                    )
                    if response.status_code != 503 or attempt == retries:  # noqa: PLR2004
                        break
                    outcome.retried += 1  # as a browser or an app would, after Retry-After
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            except httpx.TimeoutException:
                kind = "timeout"
            except httpx.TransportError as exc:
                kind = type(exc).__name__
            else:
                status = response.status_code
                if status == 200 and response.json().get("ok") is True:  # noqa: PLR2004
                    outcome.served += 1
                    return
                if status == 503:  # noqa: PLR2004
                    outcome.refused += 1
                    outcome.refused_without_retry_after += "retry-after" not in response.headers
                    return
                if status == 401:  # noqa: PLR2004
                    outcome.wrongly_denied += 1
                    return
                kind = f"http-{status}"
            outcome.lost += 1
            outcome.lost_kinds[kind] = outcome.lost_kinds.get(kind, 0) + 1

        await asyncio.gather(*(one() for _ in range(logins)))


def _oom_kills(group: Group) -> int:
    for line in group.read("memory.oom_control").splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            return int(value)
    return 0


def _groups(name: str, limit_mib: int, cpu_quota: int) -> tuple[Group, Group | None]:
    """A memory group with the limit and swap off, and a cpu group with the quota if cpu is v1."""
    memory = Group("memory", name)
    memory.write("memory.limit_in_bytes", limit_mib * MIB)
    memory.write("memory.swappiness", 0)
    # Absent without swap accounting (then there is no swap to turn off here).
    memory.write("memory.memsw.limit_in_bytes", limit_mib * MIB)
    if not (CGROUP / "cpu" / "cpu.cfs_quota_us").exists():
        return memory, None
    try:
        cpu = Group("cpu", name)
    except OSError:
        memory.remove()
        raise
    cpu.write("cpu.cfs_period_us", 100_000)
    cpu.write("cpu.cfs_quota_us", cpu_quota * 100_000)
    return memory, cpu


def _start(
    variant: str, groups: list[Group], encoded: str, cpu_count: int | None, python: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server: a shell joins the groups, then becomes uvicorn (all of it is charged)."""
    port = harness.free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
        "BENCH_VARIANT": variant,
        "BENCH_ENCODED": encoded,
    }
    if cpu_count is not None:
        env["BENCH_CPU_COUNT"] = str(cpu_count)
    joins = "; ".join(f'echo $$ > "{group.path / "cgroup.procs"}"' for group in groups)
    command = (
        f'{joins}; exec "$0" -m uvicorn memory_cgroup_app:app --app-dir "$1" '
        f"--host 127.0.0.1 --port {port} --log-level warning"
    )
    return subprocess.Popen(["/bin/sh", "-c", command, python, str(HERE)], env=env), port


def run_variant(
    variant: str,
    *,
    encoded: str,
    limit_mib: int = 512,
    logins: int = 40,
    cpu_count: int | None = None,
    cpu_quota: int = 2,
    timeout: float = 60.0,
    warm: bool = True,
    retries: int = 0,
    python: str = sys.executable,
) -> Outcome:
    """Run one server of ``variant`` in a fresh memory cgroup and send it one login burst."""
    name = f"loopsafe-bench-{os.getpid()}-{variant}-{time.monotonic_ns()}"
    memory, cpu = _groups(name, limit_mib, cpu_quota)
    outcome = Outcome(variant, str(cpu_count or "real"), logins, limit_mib=limit_mib)
    server: subprocess.Popen[bytes] | None = None
    try:
        groups = [memory] if cpu is None else [memory, cpu]
        server, port = _start(variant, groups, encoded, cpu_count, python)
        health = _health(port, server)
        outcome.executor_threads = health.get("default_executor")
        outcome.loopsafe_workers = health.get("max_workers")
        outcome.limits_seen = health.get("limits")
        if warm:
            # One login first, as on a server that has been up: loopsafe's
            # admission then knows what a hash costs (a cold pool admits all).
            warm_up = Outcome(variant, outcome.cpu_count, 1)
            asyncio.run(_burst(port, 1, timeout, warm_up))
            outcome.warm_up_served = warm_up.served
        start = time.monotonic()
        asyncio.run(_burst(port, logins, timeout, outcome, retries))
        outcome.seconds = round(time.monotonic() - start, 2)
        time.sleep(0.5)  # a kill in flight shows in the exit status
        outcome.oom_kills = _oom_kills(memory)
        outcome.failcnt = int(memory.read("memory.failcnt"))
        outcome.peak_mib = round(int(memory.read("memory.max_usage_in_bytes")) / MIB, 1)
    finally:
        if server is not None:
            # Its exit status if it had died before (-9: an OOM kill), else None.
            outcome.exit_status = harness.stop(server, timeout=10)
        memory.remove()
        if cpu is not None:
            cpu.remove()
    return outcome


def _row(outcome: Outcome) -> str:
    lost = outcome.lost + outcome.wrongly_denied
    status = "alive" if outcome.exit_status is None else f"exit {outcome.exit_status}"
    if outcome.exit_status == -signal.SIGKILL:
        status = "SIGKILL"
    threads = (
        f"{outcome.loopsafe_workers} workers"
        if outcome.variant == "loopsafe"
        else f"{outcome.executor_threads} threads"
    )
    return (
        f"| {outcome.variant} | {outcome.cpu_count} | {threads} | {outcome.oom_kills} | {status} "
        f"| {outcome.served} | {outcome.refused} | {lost} | {outcome.peak_mib:.0f} "
        f"| {outcome.failcnt} | {outcome.seconds:.1f} |"
    )


HEADER = (
    "| variant | os.cpu_count() | hashing threads | OOM kills | server | served | 503 | lost "
    "| peak MiB | failcnt | s |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    """Run every variant, interleaved and repeated; print the table; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-mib", type=int, default=512)
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--time-cost", type=int, default=2)
    parser.add_argument("--memory-kib", type=int, default=102400)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--cpu-counts",
        default="real,16",
        help="what os.cpu_count() answers in the servers: 'real' and/or numbers",
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--cold", action="store_true", help="no warm-up login before the burst")
    parser.add_argument(
        "--retries", type=int, default=0, help="retry a 503 after Retry-After, this many times"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    encoded = make_encoded(args.time_cost, args.memory_kib, args.parallelism)
    cpu_counts = [None if c == "real" else int(c) for c in args.cpu_counts.split(",")]
    outcomes: list[Outcome] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for repeat in range(args.repeat):
        for cpu_count in cpu_counts:
            variants = args.variants.split(",")
            if repeat % 2:
                variants.reverse()  # alternate the order between repeats
            for variant in variants:
                outcome = run_variant(
                    variant,
                    encoded=encoded,
                    limit_mib=args.limit_mib,
                    logins=args.logins,
                    cpu_count=cpu_count,
                    timeout=args.timeout,
                    warm=not args.cold,
                    retries=args.retries,
                )
                outcomes.append(outcome)
                print(_row(outcome), flush=True)
    load = os.getloadavg()
    print()
    print(
        f"{'' if args.cold else 'one login, then '}"
        f"{args.logins} concurrent logins"
        f"{f' (a 503 retried after Retry-After, up to {args.retries}x)' if args.retries else ''}"
        f", Argon2id t={args.time_cost} m={args.memory_kib} KiB "
        f"p={args.parallelism}, memory cgroup limit {args.limit_mib} MiB (swap off), cpu quota 2; "
        f"{harness.load_line()}, {started}"
    )
    print(HEADER)
    for outcome in outcomes:
        print(_row(outcome))
    if args.json is not None:
        import django  # noqa: PLC0415 - the version the stock servers ran

        report = {
            "command": "python benchmarks/memory_cgroup.py " + " ".join(argv or sys.argv[1:]),
            "date": started,
            "cores": os.cpu_count(),
            "loadavg_after": load,
            "kernel": platform.release(),
            "python": platform.python_version(),
            "django": django.get_version(),
            "argon2": {"t": args.time_cost, "m_kib": args.memory_kib, "p": args.parallelism},
            "limit_mib": args.limit_mib,
            "logins": args.logins,
            "warm_up": not args.cold,
            "retries": args.retries,
            "outcomes": [asdict(outcome) for outcome in outcomes],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
