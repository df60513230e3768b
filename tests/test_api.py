"""The facade: PasswordHash's sync methods and their async twins on the pool."""

from __future__ import annotations

import time

import anyio
import pytest

import loopsafe
from loopsafe import HashPool, LoopLagMonitor, PasswordHash, profiles

pytestmark = pytest.mark.anyio


@pytest.fixture
def ph(pool):
    """The cheap profile's hashers, PBKDF2 preferred, on the private pool."""
    return PasswordHash(profiles.CHEAP.hashers(), pool=pool)


class TestSync:
    """The synchronous methods follow Django's semantics."""

    def test_round_trip(self, ph):
        """A fresh hash verifies, a wrong password does not."""
        encoded = ph.hash("s3cret")
        assert encoded.startswith(ph.preferred.algorithm + "$")
        assert ph.verify("s3cret", encoded)
        assert not ph.verify("wrong", encoded)

    def test_bytes_and_str_are_the_same_password(self, ph):
        """A str password and its UTF-8 bytes are interchangeable, as in Django."""
        encoded = ph.hash("pässword")
        assert ph.verify("pässword".encode(), encoded)

    def test_explicit_salt(self, ph):
        """hash(salt=...) is deterministic."""
        assert ph.hash("pw", salt="fixedsalt") == ph.hash("pw", salt="fixedsalt")

    @pytest.mark.parametrize(
        "encoded",
        [
            pytest.param("", id="empty"),
            pytest.param("!unusable", id="unusable"),
            pytest.param("nosuchalgo$1$salt$hash", id="unknown-algorithm"),
            pytest.param("pbkdf2_sha256$x$salt$hash", id="non-numeric-iterations"),
            pytest.param(None, id="none"),
        ],
    )
    def test_bad_hash_verifies_false(self, ph, encoded):
        """Malformed, unusable, unknown and missing hashes verify as False, never raise."""
        assert ph.verify("pw", encoded) is False
        assert ph.verify_and_update("pw", encoded) == (False, None)

    def test_none_password_verifies_false(self, ph):
        """A None password never matches (Django's unusable-password rule)."""
        assert ph.verify(None, ph.hash("pw")) is False

    @pytest.mark.parametrize("password", [1, 1.5, ["pw"], object()], ids=type)
    def test_wrong_password_type_raises_type_error(self, ph, password):
        """Non-str/bytes passwords are a TypeError, the message naming the type only."""
        with pytest.raises(TypeError, match="str or bytes"):
            ph.hash(password)
        with pytest.raises(TypeError):
            ph.verify(password, ph.hash("pw"))

    def test_wrong_hash_type_raises_type_error(self, ph):
        """A non-str encoded hash is a TypeError."""
        with pytest.raises(TypeError):
            ph.verify("pw", b"pbkdf2_sha256$1$a$b")

    def test_verify_and_update_upgrades_other_algorithm(self, ph):
        """A right password in a non-preferred algorithm comes back with a preferred hash."""
        old = ph.hashers[-1].hash("pw")
        assert not old.startswith(ph.preferred.algorithm + "$")
        ok, new = ph.verify_and_update("pw", old)
        assert ok
        assert new is not None
        assert new.startswith(ph.preferred.algorithm + "$")
        assert ph.verify_and_update("pw", new) == (True, None)

    def test_verify_and_update_upgrades_weaker_parameters(self):
        """Same algorithm, fewer iterations than preferred: must update."""
        weak = loopsafe.PBKDF2Hasher(iterations=1000)
        strong = loopsafe.PBKDF2Hasher(iterations=2000)
        ph = PasswordHash([strong])
        ok, new = ph.verify_and_update("pw", weak.hash("pw"))
        assert ok
        assert new is not None
        assert "$2000$" in new

    def test_wrong_password_is_never_updated(self, ph):
        """A wrong password never yields a new hash."""
        old = ph.hashers[-1].hash("pw")
        assert ph.verify_and_update("nope", old) == (False, None)

    def test_verify_dummy(self, ph):
        """verify_dummy spends a hash and answers False."""
        assert ph.verify_dummy() is False

    def test_needs_hashers(self):
        """An empty hasher list or a foreign object is refused."""
        with pytest.raises(ValueError):
            PasswordHash([])
        with pytest.raises(TypeError):
            PasswordHash([object()])  # type: ignore[list-item]

    def test_recommended_prefers_argon2(self):
        """recommended() makes Argon2id hashes and still verifies the other algorithms."""
        ph = PasswordHash.recommended(profile=profiles.CHEAP)
        assert ph.preferred.algorithm == "argon2"
        assert "argon2id" in ph.hash("pw")
        algorithms = {h.algorithm for h in ph.hashers}
        assert {"pbkdf2_sha256", "bcrypt_sha256", "scrypt"} <= algorithms

    def test_repr_names_algorithms_only(self, ph):
        """The repr lists algorithms and parameters, no password or hash."""
        text = repr(ph)
        assert "pbkdf2_sha256" in text or "PBKDF2" in text


class TestAsync:
    """The a-twins answer like the sync methods and do their work on the pool."""

    async def test_async_round_trip(self, ph, pool):
        """ahash/averify/averify_and_update run on the pool and agree with the sync methods."""
        encoded = await ph.ahash("s3cret")
        assert await ph.averify("s3cret", encoded)
        assert not await ph.averify("nope", encoded)
        assert await ph.averify_and_update("s3cret", encoded) == (True, None)
        ok, new = await ph.averify_and_update("s3cret", ph.hashers[-1].hash("s3cret"))
        assert ok
        assert new is not None
        assert await ph.averify_dummy() is False
        assert await ph.ahash("pw", salt="fixedsalt") == ph.hash("pw", salt="fixedsalt")
        assert pool.statistics().completed == 7

    async def test_type_errors_are_raised_before_queueing(self, ph, pool):
        """Wrong types fail on the loop at once, without taking a pool slot."""
        with pytest.raises(TypeError):
            await ph.averify(123, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await ph.ahash(None)  # type: ignore[arg-type]
        assert pool.statistics().admitted == 0

    async def test_default_pool_is_looked_up_per_call(self):
        """Without a pool, the process default is used, so configure() takes effect."""
        ph = PasswordHash(profiles.CHEAP.hashers())
        new_default = loopsafe.configure(1)
        before = new_default.statistics().completed  # configure() may reuse the live pool
        try:
            assert await ph.averify("pw", ph.hash("pw"))
            assert new_default.statistics().completed == before + 1
            assert ph.pool is new_default
        finally:
            new_default.close()

    async def test_timeout(self, pool):
        """A timeout shorter than one hash raises TimeoutError."""
        ph = PasswordHash([loopsafe.PBKDF2Hasher(iterations=3_000_000)], pool=pool)
        encoded = ph.preferred.encode("pw", "fixedsalt0123456789ab")
        with pytest.raises(TimeoutError):
            await ph.averify("pw", encoded, timeout=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", [pytest.param(("asyncio", {}), id="asyncio")])
async def test_40_real_pbkdf2_verifications_do_not_block_the_loop(anyio_backend):
    """40 concurrent averify at Django 6.1's PBKDF2 parameters; worst loop lag << hashing time.

    The exact figures come from ``loopsafe bench``; this pins the behaviour with
    a bound generous enough for a shared 2-core CI machine.
    """
    hasher = loopsafe.PBKDF2Hasher()  # 1,500,000 iterations, Django 6.1's default
    encoded = hasher.hash("correct horse")
    # No wait-based admission: all 40 run (a fresh pool now refuses most of such a burst).
    pool = HashPool(max_queue_wait=None)
    ph = PasswordHash([hasher], pool=pool)
    results: list[bool] = []

    async def login() -> None:
        results.append(await ph.averify("correct horse", encoded))

    start = time.perf_counter()
    async with LoopLagMonitor() as lag, anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(login)
    total = time.perf_counter() - start
    worst = lag.snapshot().max
    pool.close()
    assert results == [True] * 40
    # On the loop, one sample would be a whole hash (hundreds of ms) and the
    # total would be one long stall. Off the loop, lag is scheduling noise.
    assert worst < total / 20, f"worst lag {worst:.3f}s over {total:.1f}s of hashing"
    assert worst < 0.25, f"worst lag {worst:.3f}s"


class TestUnknownFormats:
    """A hash no configured hasher reads verifies False, and the reason still reaches the user."""

    BARE_BCRYPT = "$2b$04$" + "a" * 21 + "." + "b" * 31

    def test_identify_names_the_missing_reader(self):
        """identify() raises UnknownAlgorithm whose message names the hasher to add."""
        from loopsafe import PBKDF2Hasher, UnknownAlgorithm

        ph = PasswordHash([PBKDF2Hasher(iterations=1000)])
        with pytest.raises(UnknownAlgorithm, match=r"add MCFBCryptHasher\(\)") as info:
            ph.identify(self.BARE_BCRYPT)
        assert self.BARE_BCRYPT not in str(info.value)
        assert ph.identify("pbkdf2_sha256$1000$salt$hash") is ph.preferred
        with pytest.raises(TypeError):
            ph.identify(None)  # type: ignore[arg-type]

    def test_verify_logs_the_reason_once(self, caplog):
        """The first unreadable-format verification logs the hint; repeats stay quiet."""
        from loopsafe import PBKDF2Hasher
        from loopsafe.hashers import _identify

        _identify._reported.clear()
        ph = PasswordHash([PBKDF2Hasher(iterations=1000)])
        with caplog.at_level("WARNING", logger="loopsafe.hashers"):
            assert ph.verify("pw", self.BARE_BCRYPT) is False
            assert ph.verify("pw", self.BARE_BCRYPT) is False
        records = [r for r in caplog.records if r.name == "loopsafe.hashers"]
        assert len(records) == 1
        assert "MCFBCryptHasher" in records[0].getMessage()
        assert self.BARE_BCRYPT not in records[0].getMessage()

    def test_plaintext_stored_by_mistake_is_not_logged(self, caplog):
        """A stored string that is no known format is reported without quoting any of it."""
        from loopsafe import PBKDF2Hasher
        from loopsafe.hashers import _identify

        _identify._reported.clear()
        ph = PasswordHash([PBKDF2Hasher(iterations=1000)])
        with caplog.at_level("WARNING", logger="loopsafe.hashers"):
            assert ph.verify("pw", "hunter2$plaintext") is False
        assert "hunter2" not in caplog.text
