"""A hash whose memory cannot be had is answered `Overloaded`, not a crash or a wrong password.

The kernel refuses memory with a failed ``mmap`` (Argon2's block memory, see
`loopsafe.hashers._argon2_core`) or Python with `MemoryError`. The worker gives
the call's slot and memory back, logs one line, answers ``Overloaded(reason=
"memory")`` (503 + ``Retry-After`` in the integrations) and keeps running: the
pool stays at full size. The real refusal is made with ``RLIMIT_AS`` in a
child interpreter; the in-process ones inject the failure at the ``mmap`` call.
"""

from __future__ import annotations

import errno
import logging
import sys
import textwrap
import threading

import anyio
import pytest

from _support import run_child
from loopsafe import Argon2Hasher, HashPool, Overloaded, PasswordHash
from loopsafe.hashers import _argon2_core

pytestmark = pytest.mark.anyio

argon2 = pytest.importorskip("argon2")

_CHEAP = {"time_cost": 1, "memory_cost": 1024, "parallelism": 2}


def _no_memory(size: int) -> object:
    """``_argon2_core._map`` as it fails when the kernel refuses the mapping."""
    raise OSError(errno.ENOMEM, "Cannot allocate memory")


class TestWorker:
    """The worker's translation, for any callable that raises `MemoryError`."""

    async def test_memory_error_becomes_overloaded_and_frees_the_budget(self, caplog):
        """MemoryError -> Overloaded(reason="memory") with a positive retry_after; budget freed."""
        pool = HashPool(2, max_memory=100 * 1024 * 1024)

        def no_memory() -> None:
            raise MemoryError

        caplog.set_level(logging.WARNING, logger="loopsafe.pool")
        with pytest.raises(Overloaded) as info:
            await pool.run(no_memory, memory=60 * 1024 * 1024)
        assert info.value.reason == "memory"
        assert info.value.retry_after > 0
        assert info.value.retry_after_header.isdigit()
        records = [r for r in caplog.records if r.name == "loopsafe.pool"]
        assert len(records) == 1, records
        assert "could not get its memory" in records[0].getMessage()
        stats = pool.statistics()
        assert (stats.running, stats.memory_in_use) == (0, 0)
        # Two calls that each need 60 of the 100 MiB still run, one after the other.
        assert [await pool.run(pow, 2, n, memory=60 * 1024 * 1024) for n in (3, 4)] == [8, 16]
        pool.close()

    async def test_pool_keeps_every_worker_after_refusals(self):
        """After refusals on every worker, the pool still runs max_workers calls at once."""
        pool = HashPool(2)

        def no_memory() -> None:
            raise MemoryError("no room")

        for _ in range(6):
            with pytest.raises(Overloaded):
                await pool.run(no_memory)
        barrier = threading.Barrier(2, timeout=5)
        async with anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(pool.run, barrier.wait)
        stats = pool.statistics()
        assert stats.threads == 2
        assert stats.failed == 6
        pool.close()


class TestArgon2:
    """Argon2's memory is an mmap per hash: a refused mapping is a MemoryError, never False."""

    def test_refused_mapping_raises_memory_error_in_verify(self, monkeypatch):
        """verify_decoded raises MemoryError where argon2-cffi would answer a wrong password."""
        encoded = argon2.PasswordHasher(**_CHEAP).hash("pw")
        decoded = _argon2_core.decode(encoded)
        assert decoded is not None
        monkeypatch.setattr(_argon2_core, "_map", _no_memory)
        with pytest.raises(MemoryError, match="1024 KiB"):
            _argon2_core.verify_decoded(b"pw", decoded)
        with pytest.raises(MemoryError):
            _argon2_core.hash_encoded(b"pw", b"somesalt", hash_len=32, type=decoded.type, **_CHEAP)

    async def test_refused_mapping_reaches_the_caller_as_overloaded(self, monkeypatch):
        """PasswordHash.averify on a pool: Overloaded, and the next hash, with memory, succeeds."""
        pool = HashPool(1)
        password_hash = PasswordHash([Argon2Hasher(**_CHEAP)], pool=pool)
        encoded = await password_hash.ahash("pw")
        monkeypatch.setattr(_argon2_core, "_map", _no_memory)
        with pytest.raises(Overloaded) as info:
            await password_hash.averify("pw", encoded)
        assert info.value.reason == "memory"
        monkeypatch.undo()
        assert await password_hash.averify("pw", encoded) is True
        assert pool.statistics().threads == 1
        pool.close()

    @pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/status are Linux")
    def test_kernel_refusal_under_an_address_space_limit(self):
        """A real mmap refused by the kernel (RLIMIT_AS): Overloaded, then a smaller hash runs."""
        script = textwrap.dedent(
            """
            import asyncio, re, resource
            from loopsafe import Argon2Hasher, HashPool, Overloaded, PasswordHash

            async def main():
                pool = HashPool(1)
                def facade(kib):
                    hasher = Argon2Hasher(time_cost=1, memory_cost=kib, parallelism=2)
                    return PasswordHash([hasher], pool=pool)
                small, big = facade(8192), facade(262144)
                encoded_small = await small.ahash("pw")  # the worker thread exists now
                encoded_big = big.hashers[0].hash("pw")  # before the limit: 256 MiB
                with open("/proc/self/status") as status:
                    vm = int(re.search(r"VmSize:\\s+(\\d+) kB", status.read()).group(1)) * 1024
                room = vm + 64 * 1024 * 1024  # room for the small hash, not the big one
                hard = resource.getrlimit(resource.RLIMIT_AS)[1]
                resource.setrlimit(resource.RLIMIT_AS, (room, hard))
                try:
                    await big.averify("pw", encoded_big)
                except Overloaded as exc:
                    print("refused", exc.reason)
                else:
                    print("verified")
                print("small", await small.averify("pw", encoded_small))
                print("threads", pool.statistics().threads)
                pool.close()

            asyncio.run(main())
            """
        )
        result = run_child(script, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split("\n")[:3] == ["refused memory", "small True", "threads 1"]
        assert result.stderr.count("could not get its memory") == 1, result.stderr
