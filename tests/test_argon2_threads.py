"""Argon2 lanes computed by fewer threads: byte for byte what argon2-cffi computes.

`loopsafe.hashers._argon2_core` fills argon2-cffi's ``argon2_context`` with the
stored lanes and a thread count of loopsafe's choosing. These tests compare
its output with hashes made the usual way (one thread per lane): recorded
ones (the Argon2 reference CLI's, Django's, argon2-cffi's) and live ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import sys
import threading
import time

import pytest
from argon2.exceptions import HashingError, VerificationError
from argon2.low_level import Type, hash_secret, hash_secret_raw, verify_secret

from loopsafe import Argon2Hasher, HashPool, PHCArgon2Hasher
from loopsafe.hashers import _argon2_core as core
from loopsafe.hashers._argon2 import argon2_threads
from loopsafe.testing import assert_loop_responsive

VECTORS = json.loads(
    (pathlib.Path(__file__).parent / "vectors" / "argon2-lanes.json").read_text(encoding="utf-8")
)
LANES = [1, 2, 4, 8, 16]

# The Argon2 reference CLI's output, as argon2-cffi's tests record it
# (`echo -n password | ./argon2 somesalt -t 2 -m 16 -p 4`, -d, -id).
CLI_HASHES = {
    Type.I: b"$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$"
    b"IMit9qkFULCMA/ViizL57cnTLOa5DiVM9eMwpAvPwr4",
    Type.D: b"$argon2d$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$"
    b"cZn5d+rFh+ZfuRhm2iGUGgcrW5YLeM6q7L3vBsdmFA0",
    Type.ID: b"$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$"
    b"GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo",
}
# argon2-cffi's test vector for a hash without "v=": Argon2 1.0.
CLI_HASH_I_V10 = (
    b"$argon2i$m=65536,t=2,p=4$c29tZXNhbHQAAAAAAAAAAA$QWLzI4TY9HkL2ZTLc8g6SinwdhZewYrzz9zxCo0bkGY"
)


def _cffi_verify(encoded: bytes, secret: bytes, kind: Type) -> bool:
    try:
        return verify_secret(encoded, secret, kind)
    except VerificationError:
        return False


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("kind", [Type.I, Type.D, Type.ID], ids=["argon2i", "argon2d", "argon2id"])
def test_reference_cli_vectors(kind: Type, threads: int) -> None:
    """The reference CLI's 4-lane hashes come out the same from 1, 2 or 4 threads."""
    encoded = CLI_HASHES[kind]
    made = core.hash_encoded(
        b"password",
        b"somesalt",
        time_cost=2,
        memory_cost=65536,
        parallelism=4,
        hash_len=32,
        type=kind,
        threads=threads,
    )
    assert made == encoded
    assert core.verify_encoded(encoded, b"password", kind, threads=threads)
    assert not core.verify_encoded(encoded, b"drowssap", kind, threads=threads)


def test_version_10_vector() -> None:
    """A hash without ``v=`` is Argon2 1.0 and verifies single-threaded."""
    decoded = core.decode(CLI_HASH_I_V10)
    assert decoded is not None
    assert decoded.version == 0x10
    assert core.verify_encoded(CLI_HASH_I_V10, b"password", Type.I, threads=1)
    assert not core.verify_encoded(CLI_HASH_I_V10, b"password", Type.ID, threads=1)


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(v, id=f"p{v['params']['parallelism']}-{i}")
        for i, v in enumerate(VECTORS["django"])
    ],
)
def test_django_vectors(vector: dict[str, object]) -> None:
    """Django's stock Argon2PasswordHasher output is remade byte for byte with one thread."""
    params = vector["params"]
    assert isinstance(params, dict)
    password, salt, encoded = str(vector["password"]), str(vector["salt"]), str(vector["encoded"])
    made = core.hash_encoded(
        password.encode(),
        salt.encode(),
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
        hash_len=32,
        type=Type.ID,
        threads=1,
    )
    assert "argon2" + made.decode("ascii") == encoded
    phc = encoded.removeprefix("argon2")
    assert core.verify_encoded(phc, password.encode(), Type.ID, threads=1)
    assert not core.verify_encoded(phc, password.encode() + b"!", Type.ID, threads=1)


@pytest.mark.parametrize(
    "vector",
    [
        pytest.param(
            v,
            id=f"{v['params']['type'].lower()}-v{v['params']['version']}-p{v['params']['parallelism']}",
        )
        for v in VECTORS["argon2_cffi"]
    ],
)
def test_argon2_cffi_vectors(vector: dict[str, object]) -> None:
    """argon2-cffi's hash_secret output (all types, versions 19 and 16) is remade by one thread."""
    params = vector["params"]
    assert isinstance(params, dict)
    kind = Type[params["type"]]
    password = str(vector["password"]).encode()
    encoded = str(vector["encoded"]).encode()
    made = core.hash_encoded(
        password,
        base64.b64decode(str(vector["salt_b64"])),
        time_cost=params["time_cost"],
        memory_cost=params["memory_cost"],
        parallelism=params["parallelism"],
        hash_len=params["hash_len"],
        type=kind,
        version=params["version"],
        threads=1,
    )
    assert made == encoded
    assert core.verify_encoded(encoded, password, kind, threads=1)
    assert not core.verify_encoded(encoded, password + b"\0", kind, threads=1)


@pytest.mark.parametrize("lanes", LANES)
@pytest.mark.parametrize("kind", [Type.I, Type.D, Type.ID], ids=["argon2i", "argon2d", "argon2id"])
def test_live_against_argon2_cffi(kind: Type, lanes: int) -> None:
    """For random inputs, every thread count gives argon2-cffi's raw and encoded output."""
    secret, salt = os.urandom(lanes + 3), os.urandom(16)
    params = {
        "time_cost": 2,
        "memory_cost": 8 * lanes + 24,
        "parallelism": lanes,
        "hash_len": 32,
        "type": kind,
    }
    raw = hash_secret_raw(secret, salt, **params)  # type: ignore[arg-type]
    encoded = hash_secret(secret, salt, **params)  # type: ignore[arg-type]
    for threads in sorted({1, 2, 3, lanes, lanes + 5}):
        assert core.hash_raw(secret, salt, threads=threads, **params) == raw  # type: ignore[arg-type]
        assert core.hash_encoded(secret, salt, threads=threads, **params) == encoded  # type: ignore[arg-type]


GOOD = "$argon2id$v=19$m=32,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$"


@pytest.fixture(scope="module")
def good_hash() -> bytes:
    """A cheap 2-lane argon2id hash of b"pw", made by argon2-cffi."""
    return hash_secret(
        b"pw",
        b"somesaltsomesalt",
        time_cost=2,
        memory_cost=32,
        parallelism=2,
        hash_len=32,
        type=Type.ID,
    )


def _refusals(good: bytes) -> list[object]:
    text = good.decode("ascii")
    head, salt, tag = text.rsplit("$", 2)
    # The tag's last character carries spare bits: set one.
    spare = tag[:-1] + ("B" if tag[-1] == "A" else chr(ord(tag[-1]) ^ 1))
    return [
        pytest.param(head + "$" + salt + "$" + spare, id="tag-spare-bits-set"),
        pytest.param(head + "$" + salt + "$" + tag + "A", id="tag-length-4n+1"),
        pytest.param(head + "$" + salt + "$" + tag + "=", id="tag-padded"),
        pytest.param(head + "$" + salt + "$" + tag + "$", id="trailing-dollar"),
        pytest.param(text.replace("m=32,t=2", "t=2,m=32"), id="t-before-m"),
        pytest.param(text.replace("p=2", "p=+2"), id="signed-lanes"),
        pytest.param(text.replace("m=32", "m=4294967328"), id="memory-over-32-bits"),
        pytest.param(text.replace("v=19", "v=4294967315"), id="version-over-32-bits"),
        pytest.param(text.replace("$argon2id$", "$argon2i$"), id="other-type"),
        pytest.param(text.replace("m=32", "m=8"), id="memory-under-8-per-lane"),
        pytest.param(text.replace("t=2", "t=0"), id="zero-passes"),
        pytest.param(text.replace("p=2", "p=0"), id="zero-lanes"),
        pytest.param(head + "$c29tZQ$" + tag, id="salt-under-8-bytes"),
        pytest.param(head + "$" + salt + "$AAA", id="tag-under-4-bytes"),
        pytest.param(text.replace("$v=19", ""), id="no-version-is-v16"),
        pytest.param(text.replace("v=19", "v=017"), id="version-17"),
        pytest.param(text.replace("m=32", "m=0032"), id="leading-zeros"),
        pytest.param(text + "\n", id="newline"),
        pytest.param("", id="empty"),
    ]


@pytest.mark.parametrize("index", range(19))
def test_answers_like_verify_secret(good_hash: bytes, index: int) -> None:
    """Odd and broken strings verify as argon2-cffi's verify_secret says (False if it raises)."""
    case = _refusals(good_hash)[index]
    encoded: str = case.values[0]  # type: ignore[attr-defined]
    expected = _cffi_verify(encoded.encode(), b"pw", Type.ID)
    assert core.verify_encoded(encoded, b"pw", Type.ID, threads=1) is expected, case.id  # type: ignore[attr-defined]


def test_a_good_hash_verifies(good_hash: bytes) -> None:
    """The fixture's hash verifies with the right password only."""
    assert core.verify_encoded(good_hash, b"pw", Type.ID)
    assert not core.verify_encoded(good_hash, b"pW", Type.ID)
    assert not core.verify_encoded(good_hash.decode() + "x", b"pw", Type.ID)
    assert not core.verify_encoded("é".encode() + good_hash, b"pw", Type.ID)


def test_bad_parameters_raise_hashing_error_like_argon2_cffi() -> None:
    """Parameters the C library refuses raise argon2-cffi's HashingError, with its message."""
    params = {"time_cost": 1, "memory_cost": 8, "parallelism": 2, "hash_len": 32, "type": Type.ID}
    with pytest.raises(HashingError) as theirs:
        hash_secret_raw(b"pw", b"somesalt", **params)  # type: ignore[arg-type]
    with pytest.raises(HashingError) as ours:
        core.hash_raw(b"pw", b"somesalt", **params)  # type: ignore[arg-type]
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize(
    ("threads", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(2**24, ValueError, id="over-c-max"),
        pytest.param(True, TypeError, id="bool"),
        pytest.param(1.0, TypeError, id="float"),
    ],
)
def test_thread_count_is_checked(threads: object, error: type[Exception]) -> None:
    """A thread count that is not an int in [1, 2**24 - 1] is refused before any work."""
    with pytest.raises(error, match="threads"):
        core.hash_raw(
            b"pw",
            b"somesalt",
            time_cost=1,
            memory_cost=8,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
            threads=threads,  # type: ignore[arg-type]
        )


def test_repr_hides_salt_and_tag(good_hash: bytes) -> None:
    """A decoded hash's repr shows the parameters, never the salt or the tag."""
    decoded = core.decode(good_hash)
    assert decoded is not None
    text = repr(decoded)
    assert text == "PHCHash(argon2id, v=19, m=32, t=2, p=2)"
    assert "c29tZ" not in text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_one_thread_starts_no_thread() -> None:
    """With threads=1 the C library computes 8 lanes without starting a thread."""
    tasks = pathlib.Path("/proc/self/task")
    before = len(list(tasks.iterdir()))
    seen = before
    done = threading.Event()

    def watch() -> None:
        nonlocal seen
        while not done.is_set():
            seen = max(seen, len(list(tasks.iterdir())))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(3):
            core.hash_raw(
                b"pw",
                b"somesaltsomesalt",
                time_cost=3,
                memory_cost=8192,
                parallelism=8,
                hash_len=32,
                type=Type.ID,
                threads=1,
            )
    finally:
        done.set()
        watcher.join()
    # The watcher itself is the one extra thread.
    assert seen <= before + 1


class TestArena:
    """The block memory kept between hashes."""

    @pytest.fixture(autouse=True)
    def _restore(self) -> object:
        """Put the module's arena settings back after each test."""
        keep, max_bytes = core._arena.keep, core._arena.max_bytes
        yield None
        core.keep_memory(keep, max_bytes=max_bytes)

    @staticmethod
    def _hash(memory_cost: int) -> bytes:
        return core.hash_raw(
            b"pw",
            b"somesaltsomesalt",
            time_cost=1,
            memory_cost=memory_cost,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
        )

    def test_keeps_the_largest_buffers_up_to_keep(self) -> None:
        """At most ``keep`` buffers stay mapped, the largest ones."""
        core.keep_memory(0)
        core.keep_memory(2)
        for memory_cost in (64, 128, 256):
            self._hash(memory_cost)
        assert core._arena.kept_bytes() == (256 + 128) * 1024

    def test_a_buffer_above_max_bytes_is_not_kept(self) -> None:
        """A hash's memory above ``max_bytes`` is unmapped after the hash."""
        core.keep_memory(0)
        core.keep_memory(2, max_bytes=100 * 1024)
        self._hash(256)
        assert core._arena.kept_bytes() == 0

    def test_keep_zero_unmaps_everything(self) -> None:
        """keep_memory(0) unmaps the kept buffers now and maps every hash's memory anew."""
        self._hash(64)
        core.keep_memory(0)
        assert core._arena.kept_bytes() == 0
        assert self._hash(64) == self._hash(64)
        assert core._arena.kept_bytes() == 0

    def test_reused_memory_gives_the_same_answers_across_threads(self) -> None:
        """Threads sharing two kept buffers all get argon2-cffi's answer (started by a barrier)."""
        core.keep_memory(2)
        expected = {
            m: hash_secret_raw(
                b"pw",
                b"somesaltsomesalt",
                time_cost=1,
                memory_cost=m,
                parallelism=1,
                hash_len=32,
                type=Type.ID,
            )
            for m in (64, 96, 128, 160)
        }
        barrier = threading.Barrier(8)
        wrong: list[int] = []
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)

        def work(m: int) -> None:
            barrier.wait()
            for _ in range(20):
                if self._hash(m) != expected[m]:
                    wrong.append(m)

        try:
            threads = [threading.Thread(target=work, args=(m,)) for m in list(expected) * 2]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        assert wrong == []
        assert len(core._arena._free) <= 2


def test_the_call_releases_the_gil() -> None:
    """Another Python thread keeps running while a hash is computed (cffi drops the GIL)."""
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0)

    counter = threading.Thread(target=count)
    start = time.perf_counter()
    counter.start()
    try:
        core.hash_raw(
            b"pw",
            b"somesaltsomesalt",
            time_cost=4,
            memory_cost=16384,
            parallelism=8,
            hash_len=32,
            type=Type.ID,
        )
    finally:
        done.set()
        counter.join()
    assert time.perf_counter() - start > 0
    assert ticks > 10


class TestHashers:
    """`Argon2Hasher` and `PHCArgon2Hasher` compute through the core, one thread on a worker."""

    def test_default_is_one_thread_on_a_pool_worker(self) -> None:
        """None means 1 thread on a HashPool worker and the lanes elsewhere."""

        async def on_pool() -> int:
            pool = HashPool(max_workers=1, name="argon2-threads-test")
            try:
                return await pool.run(argon2_threads, None, 8)
            finally:
                await pool.aclose()

        assert asyncio.run(on_pool()) == 1
        assert argon2_threads(None, 8) == 8
        assert argon2_threads(3, 8) == 3

    @pytest.mark.parametrize("threads", [None, 1, 2, 16])
    @pytest.mark.parametrize("lanes", LANES)
    def test_django_format_is_argon2_cffis(self, lanes: int, threads: int | None) -> None:
        """Argon2Hasher makes and verifies what argon2-cffi makes, for any lanes and threads."""
        hasher = Argon2Hasher(
            time_cost=1, memory_cost=16 * lanes, parallelism=lanes, threads=threads
        )
        encoded = hasher.encode("correct horse", "somesaltsomesalt")
        expected = hash_secret(
            b"correct horse",
            b"somesaltsomesalt",
            time_cost=1,
            memory_cost=16 * lanes,
            parallelism=lanes,
            hash_len=32,
            type=Type.ID,
        )
        assert encoded == "argon2" + expected.decode("ascii")
        assert hasher.verify("correct horse", encoded)
        assert not hasher.verify("correct hors", encoded)

    @pytest.mark.parametrize("vector", VECTORS["argon2_cffi"][:15], ids=lambda v: v["encoded"][:30])
    def test_phc_reader_verifies_argon2_cffi_hashes_with_one_thread(
        self, vector: dict[str, object]
    ) -> None:
        """PHCArgon2Hasher(threads=1) verifies argon2-cffi's hashes (argon2id, v19 and v16)."""
        reader = PHCArgon2Hasher(threads=1)
        password = str(vector["password"])
        assert reader.verify(password, str(vector["encoded"]))
        assert not reader.verify(password + "!", str(vector["encoded"]))

    @pytest.mark.parametrize("hasher_cls", [Argon2Hasher, PHCArgon2Hasher])
    @pytest.mark.parametrize(
        ("threads", "error"),
        [
            pytest.param(0, ValueError, id="zero"),
            pytest.param(2**24, ValueError, id="over-c-max"),
            pytest.param(True, TypeError, id="bool"),
            pytest.param("2", TypeError, id="str"),
        ],
    )
    def test_threads_argument_is_checked(
        self,
        hasher_cls: type[Argon2Hasher | PHCArgon2Hasher],
        threads: object,
        error: type[Exception],
    ) -> None:
        """A bad ``threads`` argument raises at construction, naming it."""
        with pytest.raises(error, match="threads"):
            hasher_cls(threads=threads)  # type: ignore[arg-type]

    def test_verification_on_a_pool_keeps_the_loop_responsive(self) -> None:
        """40 verifications at 8 lanes on a 2-worker pool never block the loop for 0.4 s.

        On the loop they would block it for the whole burst (40 hashes of
        about 20 ms of CPU each); the bound is generous for a busy machine.
        """
        hasher = Argon2Hasher(time_cost=2, memory_cost=16384, parallelism=8)
        encoded = hasher.hash("pw")

        async def run() -> None:
            pool = HashPool(max_workers=2, max_queue_wait=None, name="argon2-lag-test")
            try:
                async with assert_loop_responsive(0.4):
                    answers = await asyncio.gather(
                        *(pool.run(hasher.verify, "pw", encoded) for _ in range(40))
                    )
            finally:
                await pool.aclose()
            assert all(answers)

        asyncio.run(run())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_hashes_with_kept_memory() -> None:
    """After os.fork() the child hashes correctly even if the arena's lock was held at the fork."""
    core.hash_raw(
        b"pw",
        b"somesaltsomesalt",
        time_cost=1,
        memory_cost=64,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )
    expected = hash_secret_raw(
        b"pw",
        b"somesaltsomesalt",
        time_cost=1,
        memory_cost=64,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )
    with core._arena._lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit code
            ok = (
                core.hash_raw(
                    b"pw",
                    b"somesaltsomesalt",
                    time_cost=1,
                    memory_cost=64,
                    parallelism=1,
                    hash_len=32,
                    type=Type.ID,
                )
                == expected
            )
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
