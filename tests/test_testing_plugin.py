"""loopsafe.testing: the pytest plugin fails a test whose event loop a real hash blocked."""

from __future__ import annotations

import textwrap
import time

import anyio
import pytest

from _support import run_child
from loopsafe import HashPool, LoopLagMonitor, PasswordHash, PBKDF2Hasher
from loopsafe.testing import LoopBlocked, assert_loop_responsive

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.anyio

#: What the checks below allow, in seconds. A hash on the loop stalls it for
#: about BLOCKING_SECONDS; off the loop, lag stays in milliseconds even on a
#: busy 2-core machine, so both sides keep a wide margin.
BOUND = 0.2
BLOCKING_SECONDS = 0.5


def blocking_iterations(target: float = BLOCKING_SECONDS) -> int:
    """PBKDF2-SHA256 iterations that take about ``target`` seconds here (at least that, if busy).

    Measured with loopsafe's own hasher, on the KDF backend it chose (cryptography's
    PBKDF2 costs about half of hashlib's where the system OpenSSL predates 3.5), so
    the hash under test blocks for the target and not for half of it.
    """
    probe = 50_000
    PBKDF2Hasher(iterations=probe).hash("probe")  # the first hash chooses the backend
    start = time.perf_counter()
    PBKDF2Hasher(iterations=probe).hash("probe")
    elapsed = max(time.perf_counter() - start, 1e-4)
    return max(probe, int(probe * target / elapsed))


@pytest.fixture(scope="module")
def hasher() -> PBKDF2Hasher:
    """A real loopsafe PBKDF2 hasher whose one hash takes about half a second."""
    return PBKDF2Hasher(iterations=blocking_iterations())


class TestContextManager:
    """assert_loop_responsive measures the loop while its block runs."""

    async def test_catches_a_real_hash_on_the_loop(self, hasher):
        """A synchronous loopsafe hash inside async code fails the check, naming the stall."""
        with pytest.raises(LoopBlocked) as caught:  # noqa: PT012 - the block is the thing under test
            async with assert_loop_responsive(BOUND):
                await anyio.sleep(0.02)
                hasher.hash("correct horse")
        error = caught.value
        assert isinstance(error, AssertionError)
        assert error.max_lag > BOUND
        assert error.bound == BOUND
        assert 0 < error.at <= error.duration + 0.1
        assert len(error.stalls) == 1
        message = str(error)
        assert "the event loop was blocked for" in message
        assert f"(bound {BOUND * 1000:.1f} ms)" in message
        assert "correct horse" not in message

    async def test_passes_the_same_hash_under_loopsafe(self, hasher):
        """The same hash through PasswordHash.ahash (on the pool) keeps the loop responsive."""
        pool = HashPool(1)
        ph = PasswordHash([hasher], pool=pool)
        async with assert_loop_responsive(BOUND) as lag:
            encoded = await ph.ahash("correct horse")
        assert isinstance(lag, LoopLagMonitor)
        assert lag.count >= 10  # it ticked all along
        assert lag.snapshot().max <= BOUND
        assert hasher.verify("correct horse", encoded)
        pool.close()

    @pytest.mark.parametrize(
        "where",
        [
            pytest.param("first-line", id="stall-on-the-first-line"),
            pytest.param("last-line", id="stall-on-the-last-line"),
        ],
    )
    async def test_stalls_at_the_edges_are_caught(self, where):
        """A stall before the block's first await, or after its last, still counts."""
        with pytest.raises(LoopBlocked):  # noqa: PT012 - the block is the thing under test
            async with assert_loop_responsive(0.05):
                if where == "last-line":
                    await anyio.sleep(0.03)
                time.sleep(0.2)  # noqa: ASYNC251 - blocking the loop is the point

    async def test_the_blocks_own_exception_wins(self):
        """If the block raises, its exception propagates rather than LoopBlocked."""
        with pytest.raises(KeyError):  # noqa: PT012 - the block is the thing under test
            async with assert_loop_responsive(0.05):
                time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop is the point
                raise KeyError("the real failure")

    async def test_reports_the_worst_of_several_stalls(self):
        """Several stalls: the message names the worst and counts them all."""
        with pytest.raises(LoopBlocked) as caught:  # noqa: PT012 - the block is the thing under test
            async with assert_loop_responsive(0.05):
                time.sleep(0.1)  # noqa: ASYNC251 - blocking the loop is the point
                await anyio.sleep(0.02)
                time.sleep(0.3)  # noqa: ASYNC251
        assert len(caught.value.stalls) == 2
        assert caught.value.max_lag >= 0.25
        assert caught.value.at >= 0.35  # the worst one ended last
        assert "2 stall(s) over the bound" in str(caught.value)

    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"max_lag": 0}, id="zero-bound"),
            pytest.param({"max_lag": -1}, id="negative-bound"),
            pytest.param({"interval": 0}, id="zero-interval"),
        ],
    )
    def test_bad_bounds(self, kwargs):
        """Non-positive bounds are a ValueError, before anything runs."""
        with pytest.raises(ValueError, match="positive"):
            assert_loop_responsive(**kwargs)


PLUGIN_TESTS = """
import time

import pytest

from loopsafe import PasswordHash, PBKDF2Hasher

pytestmark = pytest.mark.anyio
ph = PasswordHash([PBKDF2Hasher(iterations={iterations})])


@pytest.fixture(params=["asyncio", ("asyncio", {{"use_uvloop": True}}), "trio"],
                ids=["asyncio", "uvloop", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.loop_responsive(max_lag={bound})
async def test_marker_blocking(anyio_backend):
    ph.hash("pw")  # hashes on the loop


@pytest.mark.loop_responsive(max_lag={bound})
async def test_marker_offloaded(anyio_backend):
    assert await ph.averify("pw", await ph.ahash("pw"))


async def test_fixture_blocking(anyio_backend, assert_loop_responsive):
    async with assert_loop_responsive({bound}):
        ph.hash("pw")


async def test_fixture_offloaded(anyio_backend, assert_loop_responsive):
    async with assert_loop_responsive({bound}):
        await ph.ahash("pw")


class TestInAClass:
    @pytest.mark.loop_responsive(max_lag={bound})
    async def test_method_blocking(self, anyio_backend):
        time.sleep({blocking})

    @pytest.mark.loop_responsive(max_lag={bound})
    async def test_method_offloaded(self, anyio_backend):
        await ph.ahash("pw")
"""


class TestPlugin:
    """The plugin as users meet it: marker, fixture, ini option, through a real pytest run."""

    @pytest.mark.slow
    def test_fails_blocked_tests_and_passes_offloaded_ones(self, pytester, hasher):
        """On every backend, tests that hash on the loop fail; the same under loopsafe pass."""
        pytester.makepyfile(
            test_login=PLUGIN_TESTS.format(
                iterations=hasher.iterations, bound=BOUND, blocking=BLOCKING_SECONDS
            )
        )
        reprec = pytester.inline_run("--strict-markers", "-W", "error", "-p", "no:cacheprovider")
        passed, skipped, failed = reprec.listoutcomes()
        assert not skipped
        assert sorted(r.nodeid.split("::")[-1] for r in passed) == sorted(
            f"{name}[{backend}]"
            for name in ("test_marker_offloaded", "test_fixture_offloaded", "test_method_offloaded")
            for backend in ("asyncio", "uvloop", "trio")
        )
        assert sorted(r.nodeid.split("::")[-1] for r in failed) == sorted(
            f"{name}[{backend}]"
            for name in ("test_marker_blocking", "test_fixture_blocking", "test_method_blocking")
            for backend in ("asyncio", "uvloop", "trio")
        )
        for report in failed:
            text = str(report.longrepr)
            assert "LoopBlocked: the event loop was blocked for" in text, report.nodeid
            assert "(bound 200.0 ms)" in text

    def test_marker_is_registered(self, pytester):
        """--strict-markers accepts loop_responsive, and --markers documents it."""
        result = pytester.runpytest("--markers")
        result.stdout.fnmatch_lines(["@pytest.mark.loop_responsive(max_lag=None, interval=*"])

    def test_ini_option_sets_the_default_bound(self, pytester):
        """loopsafe_max_lag is the bound for the bare marker and the fixture's default."""
        pytester.makepyfile(
            test_ini="""
            import time
            import pytest

            pytestmark = pytest.mark.anyio

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.loop_responsive
            async def test_marker(anyio_backend):
                time.sleep(0.15)

            async def test_fixture(anyio_backend, assert_loop_responsive):
                async with assert_loop_responsive():
                    time.sleep(0.15)
            """
        )
        default = pytester.runpytest("-p", "no:cacheprovider")
        default.assert_outcomes(failed=2)  # 150 ms > the default 50 ms
        pytester.makeini("[pytest]\nloopsafe_max_lag = 2.0\n")
        relaxed = pytester.runpytest("-p", "no:cacheprovider")
        relaxed.assert_outcomes(passed=2)

    def test_bad_ini_value(self, pytester):
        """A loopsafe_max_lag that is not a positive number is a usage error naming it."""
        pytester.makeini("[pytest]\nloopsafe_max_lag = soon\n")
        pytester.makepyfile(
            test_bad="""
            async def test_fixture(assert_loop_responsive):
                pass
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.stdout.fnmatch_lines(["*loopsafe_max_lag must be a number of seconds*"])
        assert result.ret != 0

    def test_marker_on_a_sync_test_fails_it(self, pytester):
        """The marker cannot watch a loop a sync test never runs: that test fails, clearly."""
        pytester.makepyfile(
            test_sync="""
            import pytest

            @pytest.mark.loop_responsive
            def test_sync():
                pass
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*loop_responsive applies to async tests only*"])

    def test_bad_marker_arguments(self, pytester):
        """Unknown marker arguments are a usage error, not a silent default."""
        pytester.makepyfile(
            test_args="""
            import pytest

            pytestmark = pytest.mark.anyio

            @pytest.fixture
            def anyio_backend():
                return "asyncio"

            @pytest.mark.loop_responsive(bound=0.1)
            async def test_args(anyio_backend):
                pass
            """
        )
        result = pytester.runpytest("-p", "no:cacheprovider")
        assert result.ret != 0
        result.stdout.fnmatch_lines(["*@pytest.mark.loop_responsive:*bound*"])


def test_import_is_cheap_and_side_effect_free():
    """Importing the plugin starts no thread, makes no pool and opens no event loop."""
    script = textwrap.dedent(
        """
        import threading, sys
        before = threading.active_count()
        import loopsafe.testing
        import loopsafe._default as default
        print(threading.active_count() - before, default._pool is None,
              "trio" in sys.modules, "anyio" in sys.modules)
        """
    )
    result = run_child(script, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True", "False", "False"]
