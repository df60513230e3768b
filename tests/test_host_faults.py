"""The host budget's directory failing while the budget runs: removed, read-only, full.

Each fault is made for real where this machine allows it (``rm -r``, a
read-only bind mount, a tiny tmpfs filled up: the last two need root and
``mount``, and are skipped with the reason elsewhere), and injected at the
OS boundary (``_host._open``, the file space reservation) where it cannot be.
What every test checks: one warning line, the per-process bound meanwhile (never
more than ``limit`` slots in the process), no worker waiting forever, and the
host's slots back once the directory works again.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING

import anyio
import pytest

from _support import REPO, child_env
from loopsafe import HashPool, _host, _runtime_dir
from loopsafe._host import HostSlots
from loopsafe.exceptions import HostBudgetUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="file locks: POSIX only")

LIMIT = 2


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private runtime directory; the budget re-checks its directory every 20 ms."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(path))
    monkeypatch.setattr(_host, "_RETRY", 0.05)
    monkeypatch.setattr(_host, "_LIVENESS_TTL", 0.02)
    return path


def _host_records(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """(warnings, infos) logged by loopsafe.host."""
    records = [r for r in caplog.records if r.name == "loopsafe.host"]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    infos = [r.getMessage() for r in records if r.levelno == logging.INFO]
    return warnings, infos


def _mount(*args: str) -> None:
    mount = shutil.which("mount") or "/bin/mount"
    subprocess.run([mount, *args], check=True, capture_output=True, timeout=10)


def _umount(path: Path) -> None:
    """Unmount now; lazily (``-l``), as a budget keeps its descriptors open until exit."""
    umount = shutil.which("umount") or "/bin/umount"
    subprocess.run([umount, "-l", str(path)], check=True, capture_output=True, timeout=10)


def _can_mount() -> str | None:
    if sys.platform != "linux":
        return "mounts are made with Linux's mount(8)"
    if os.geteuid() != 0:
        return "mounting a read-only bind or a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount(8) here"
    return None


needs_mount = pytest.mark.skipif(_can_mount() is not None, reason=_can_mount() or "")


def _wait_back(slots: HostSlots) -> int:
    """Acquire until a host slot (below the limit) comes back; return it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        slot = slots.acquire()
        assert slot is not None
        if slot < LIMIT:
            return slot
        slots.release(slot)
        time.sleep(0.02)
    pytest.fail(f"the host budget did not come back: {slots.degraded}")


@pytest.fixture
def caplog_host(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture loopsafe.host from INFO up."""
    caplog.set_level(logging.INFO, logger="loopsafe.host")
    return caplog


@pytest.mark.usefixtures("runtime_dir")
class TestRemoved:
    """The directory deleted (a /tmp cleaner, the end of a login session) while a slot is held."""

    def test_falls_back_then_remakes_the_directory(self, caplog_host):
        """Slots per process while it is gone, one warning, then the re-made directory is shared."""
        slots = HostSlots(LIMIT, "faults")
        held = slots.acquire()
        assert held is not None
        assert held < LIMIT
        shutil.rmtree(slots.path)
        time.sleep(0.03)  # past the directory check's interval
        local = slots.acquire()
        assert local is not None
        assert local >= LIMIT  # a slot of the per-process bound
        assert slots.degraded is not None
        assert slots.try_acquire() is None  # still at most LIMIT in this process
        assert slots.acquire(give_up=lambda: True) is None  # a waiter can leave: no deadlock
        slots.release(held)  # its lock was in the removed directory
        slots.release(local)
        back = _wait_back(slots)
        assert slots.degraded is None
        assert slots.path.is_dir()
        # Another process's view of the re-made directory sees the slot.
        assert HostSlots(LIMIT, "faults").usage().held == 1
        slots.release(back)
        warnings, infos = _host_records(caplog_host)
        assert len(warnings) == 1, warnings
        assert "removed" in warnings[0] or "No such file" in warnings[0]
        assert "each process now keeps to 2 hashes" in warnings[0]
        assert len(infos) == 1, infos
        assert "works again" in infos[0]

    def test_a_pool_process_keeps_answering_while_the_directory_is_removed(self, runtime_dir):
        """A real child process hashing on a host budget: every call answered, two log lines."""
        script = textwrap.dedent(
            """
            import asyncio, hashlib, sys, time
            from loopsafe import HashPool
            from loopsafe import _host
            _host._RETRY = 0.05
            _host._LIVENESS_TTL = 0.02

            def work():
                return hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 20_000)

            async def main():
                async with HashPool(2, host_limit=2, host_key="faults",
                                    max_queue_wait=None) as pool:
                    answered = 0
                    deadline = time.monotonic() + 3.0
                    while time.monotonic() < deadline:
                        await asyncio.gather(*(pool.run(work) for _ in range(4)))
                        answered += 4
                        if answered == 40:
                            print("removing", flush=True)
                            sys.stdin.readline()  # the parent removed the directory
                    print("answered", answered, pool.statistics().host_held, flush=True)

            asyncio.run(main())
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            cwd=REPO,
        )
        try:
            assert child.stdout is not None
            assert child.stdin is not None
            assert child.stdout.readline().strip() == "removing"
            shutil.rmtree(runtime_dir / "faults")
            child.stdin.write("\n")
            child.stdin.flush()
            out, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0, err
        _, answered, held = out.split()
        assert int(answered) > 40
        assert held == "0"
        assert err.count("its directory") == 1, err  # one warning; INFO is not shown
        assert (runtime_dir / "faults").is_dir()  # made again


@pytest.mark.usefixtures("runtime_dir")
class TestReadOnly:
    """The directory made read-only while the process holds no descriptor of its files yet."""

    @needs_mount
    def test_read_only_bind_mount(self, caplog_host):
        """A real read-only bind mount: the per-process bound, then the host again after umount."""
        slots = HostSlots(LIMIT, "faults")
        path = slots.path
        _mount("--bind", str(path), str(path))
        try:
            _mount("-o", "remount,ro,bind", str(path))
            slot = slots.acquire()
            assert slot is not None
            assert slot >= LIMIT
            assert "Read-only" in (slots.degraded or "")
            slots.release(slot)
        finally:
            _umount(path)
        slots.release(_wait_back(slots))
        warnings, infos = _host_records(caplog_host)
        assert len(warnings) == 1, warnings
        assert "Read-only file system (EROFS)" in warnings[0]
        assert len(infos) == 1, infos

    def test_injected_read_only_open(self, caplog_host, monkeypatch):
        """The same fault injected at open(2), for machines without mount: same outcome."""
        slots = HostSlots(LIMIT, "faults")
        real_open = _runtime_dir.open_file

        def read_only(path: Path) -> int:
            raise OSError(errno.EROFS, "Read-only file system", str(path))

        monkeypatch.setattr(_runtime_dir, "open_file", read_only)
        first, second = slots.acquire(), slots.acquire()
        assert (first, second) == (LIMIT, LIMIT + 1)
        assert slots.try_acquire() is None
        slots.release(first)
        slots.release(second)
        monkeypatch.setattr(_runtime_dir, "open_file", real_open)
        slots.release(_wait_back(slots))
        warnings, infos = _host_records(caplog_host)
        assert len(warnings) == 1, warnings
        assert len(infos) == 1, infos


@pytest.fixture
def tiny_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 64 KiB tmpfs as the runtime directory, unmounted after the test."""
    reason = _can_mount()
    if reason is not None:
        pytest.skip(reason)
    path = tmp_path / "tiny"
    path.mkdir(mode=0o700)
    _mount("-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(path))
    monkeypatch.setenv("LOOPSAFE_RUNTIME_DIR", str(path))
    monkeypatch.setattr(_host, "_RETRY", 0.05)
    try:
        yield path
    finally:
        _umount(path)


def _write_until_it_fails(fd: int) -> None:
    while True:
        os.write(fd, b"\0" * 4096)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full (ENOSPC); return it."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError, match="No space left") as info:
            _write_until_it_fails(fd)
    finally:
        os.close(fd)
    assert info.value.errno == errno.ENOSPC
    return filler


class TestFull:
    """The runtime directory's filesystem full (ENOSPC), on a real tiny tmpfs."""

    def test_a_full_disk_does_not_touch_a_running_budget(self, tiny_tmpfs, caplog_host):
        """Each file's bytes are allocated when it is made: slots, demand, estimates still work."""
        slots = HostSlots(LIMIT, "faults")
        filler = _fill(tiny_tmpfs)
        first, second = slots.acquire(10), slots.acquire(20)
        assert (first, second) == (0, 1)
        slots.publish_demand(3)
        slots.publish_service_time(0.25)
        assert slots.service_time() == 0.25
        assert slots.usage().memory == 30
        assert slots.degraded is None
        # A budget made now cannot make its files: a clear error at start, as always.
        with pytest.raises(HostBudgetUnavailable, match="No space left"):
            HostSlots(LIMIT, "another")
        filler.unlink()
        HostSlots(LIMIT, "another")
        slots.release(first)
        slots.release(second)
        assert _host_records(caplog_host) == ([], [])

    def test_a_failed_slot_write_never_keeps_the_slot(self, tiny_tmpfs, caplog_host, monkeypatch):
        """ENOSPC on a slot's first write lets the slot's lock go; the host slots come back.

        Made without the space reservation (a filesystem that cannot allocate
        ahead): meanwhile the per-process bound.
        """
        monkeypatch.setattr(_runtime_dir, "reserve", lambda fd, size: None)
        slots = HostSlots(LIMIT, "faults")
        filler = _fill(tiny_tmpfs)
        local = slots.acquire(10)
        assert local is not None
        assert local >= LIMIT
        assert "ENOSPC" in (slots.degraded or "")
        assert HostSlots(LIMIT, "faults").usage().held == 0  # no slot file left locked
        slots.release(local)
        filler.unlink()
        first = _wait_back(slots)
        second = slots.acquire(20)
        assert {first, second} == {0, 1}
        slots.release(first)
        slots.release(second)
        warnings, infos = _host_records(caplog_host)
        assert len(warnings) == 1, warnings
        assert "No space left on device (ENOSPC)" in warnings[0]
        assert len(infos) == 1, infos


@pytest.mark.anyio
async def test_pool_calls_are_answered_when_the_files_cannot_be_opened(runtime_dir, monkeypatch):
    """Workers meet the failure (no file opens): every call is still answered, none hangs."""
    async with HashPool(2, host_limit=2, host_key="faults", max_queue_wait=None) as pool:
        assert await pool.run(pow, 2, 5) == 32  # the budget works; its files are open

        def gone(path: Path) -> int:
            raise OSError(errno.ENOENT, "No such file or directory", str(path))

        shutil.rmtree(runtime_dir / "faults")
        monkeypatch.setattr(_runtime_dir, "open_file", gone)  # nor can it be made again
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for n in range(8):
                    group.start_soon(pool.run, pow, 2, n)
        stats = pool.statistics()
        assert (stats.completed, stats.running, stats.host_held) == (9, 0, 0)
        assert stats.threads == 2
