"""Host-wide figures: each process's record, summed by whichever process is scraped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from _support import child_env
from loopsafe._host_figures import HostFigures, default_metrics_key, merge

ROOT = Path(__file__).resolve().parent.parent

#: A child that publishes fixed figures, says so, and lives until killed or its stdin closes.
CHILD = textwrap.dedent(
    """
    import sys
    from loopsafe._host_figures import HostFigures
    completed, running = int(sys.argv[2]), int(sys.argv[3])
    figures = {"pools": {"default": {
        "c": {"completed": completed}, "s": {"running": running},
        "m": {"estimated_wait": 0.5 * running}, "hist": [completed, 0, 0.01 * completed],
    }}, "m": {"lag_max": 0.001 * running}}
    record = HostFigures(lambda: figures, "test-figures", directory=sys.argv[1])
    record.publish()
    print("published", flush=True)
    sys.stdin.read()
    """
)


def own(completed: int = 1, running: int = 0) -> dict:
    """This process's figures in a test."""
    return {
        "pools": {
            "default": {
                "c": {"completed": completed},
                "s": {"running": running},
                "m": {"estimated_wait": 0.0},
                "hist": [completed, 0, 0.01 * completed],
            }
        },
        "m": {"lag_max": 0.0},
    }


@pytest.fixture
def directory():
    """A private runtime directory (0700, as loopsafe wants it)."""
    with tempfile.TemporaryDirectory() as path:
        yield path


def start_child(directory: str, completed: int, running: int) -> subprocess.Popen[str]:
    """A sibling worker that has published its figures."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, directory, str(completed), str(running)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "published"
    return child


def stop(child: subprocess.Popen[str], sig: int | None = None) -> None:
    """End a child (closing its stdin, or with ``sig`` by its PID), reap it, close its pipes."""
    if sig is not None and child.poll() is None:
        os.kill(child.pid, sig)
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()
    child.wait(timeout=30)


class TestMerge:
    """The sums: counters and histograms over all, gauges over the live processes."""

    def test_counters_add_up_gauges_sum_or_take_the_worst(self):
        """Counters and buckets add (exited included); s gauges add; m gauges take the maximum."""
        other = own(completed=5, running=2)
        other["pools"]["default"]["m"]["estimated_wait"] = 0.7
        other["m"]["lag_max"] = 0.2
        exited = {"pools": {"default": {"c": {"completed": 10}, "hist": [10, 0, 0.1]}}}
        host = merge(own(completed=1, running=1), [other], exited)
        pool = host["pools"]["default"]
        assert pool["c"] == {"completed": 16}
        assert pool["s"] == {"running": 3}
        assert pool["m"] == {"estimated_wait": 0.7}
        assert pool["hist"] == [16, 0, pytest.approx(0.16)]
        assert host["m"] == {"lag_max": 0.2}

    def test_histograms_with_other_buckets_are_left_out(self):
        """A process with other bucket bounds (another version) does not corrupt the sums."""
        other = own(completed=5)
        other["pools"]["default"]["hist"] = [1, 2, 3, 4]
        host = merge(own(completed=1), [other], {})
        assert host["pools"]["default"]["hist"] == [1, 0, 0.01]
        assert host["pools"]["default"]["c"] == {"completed": 6}

    def test_pools_this_process_does_not_export_are_ignored(self):
        """Only the scraped process's pools are exported (no label appears from elsewhere)."""
        other = {"pools": {"elsewhere": own()["pools"]["default"]}, "m": {}}
        assert set(merge(own(), [other], {})["pools"]) == {"default"}


class TestProcesses:
    """Real sibling processes publish; this one reads the host."""

    def test_live_siblings_are_summed(self, directory):
        """Two live siblings' counters and gauges add to this process's own."""
        children = [start_child(directory, 5, 2), start_child(directory, 7, 1)]
        try:
            reader = HostFigures(lambda: own(1, 0), "test-figures", directory=directory)
            host = reader.host()["pools"]["default"]
            assert host["c"]["completed"] == 13
            assert host["s"]["running"] == 3
            assert host["m"]["estimated_wait"] == 1.0
            reader.close()
        finally:
            for child in children:
                stop(child)

    def test_a_killed_siblings_counts_stay_and_its_gauges_go(self, directory):
        """After SIGKILL, the sibling's counters are kept (folded once), its gauges no longer."""
        survivor = start_child(directory, 3, 1)
        victim = start_child(directory, 5, 2)
        try:
            reader = HostFigures(lambda: own(1, 0), "test-figures", directory=directory)
            assert reader.host()["pools"]["default"]["c"]["completed"] == 9
            stop(victim, signal.SIGKILL)
            for _ in range(2):  # folded at the first read, never counted twice
                host = reader.host()["pools"]["default"]
                assert host["c"]["completed"] == 9
                assert host["s"]["running"] == 1
                assert host["hist"][0] == 9
            records = [p.name for p in (Path(directory) / "test-figures").glob("rec-*")]
            assert len(records) == 2  # the survivor's and this process's: the dead one is gone
            reader.close()
        finally:
            stop(survivor)

    def test_a_new_run_starts_from_zero(self, directory):
        """A process that finds no live sibling forgets what earlier runs left."""
        first = start_child(directory, 5, 0)
        stop(first)
        second = start_child(directory, 2, 0)  # no sibling alive when it claimed its record
        try:
            reader = HostFigures(lambda: own(1, 0), "test-figures", directory=directory)
            assert reader.host()["pools"]["default"]["c"]["completed"] == 3
            reader.close()
        finally:
            stop(second)

    def test_close_removes_the_record(self, directory):
        """A closed publisher's record disappears; siblings no longer count it."""
        publisher = HostFigures(lambda: own(4, 1), "test-figures", directory=directory)
        publisher.publish()
        assert list((Path(directory) / "test-figures").glob("rec-*"))
        publisher.close()
        assert not list((Path(directory) / "test-figures").glob("rec-*"))

    def test_a_forked_child_publishes_its_own_record(self, directory):
        """After fork (gunicorn --preload), the child claims a record; the parent keeps its own."""
        figures = own(2, 0)
        publisher = HostFigures(lambda: figures, "test-figures", directory=directory)
        publisher.publish()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                figures["pools"]["default"]["c"]["completed"] = 5
                publisher.publish()
                time.sleep(0.5)
            finally:
                os._exit(0)
        time.sleep(0.2)
        host = publisher.host()["pools"]["default"]
        os.waitpid(pid, 0)
        assert host["c"]["completed"] == 7
        publisher.close()


class TestDirectory:
    """Where the records live, and what happens when they cannot."""

    def test_default_key_differs_per_server_and_is_overridable(self, monkeypatch):
        """The key names the user and program plus a digest; LOOPSAFE_METRICS_KEY overrides it."""
        assert default_metrics_key().startswith("figures-")
        monkeypatch.setenv("LOOPSAFE_METRICS_KEY", "site-metrics")
        assert default_metrics_key() == "site-metrics"
        monkeypatch.setenv("LOOPSAFE_METRICS_KEY", "../escape")
        with pytest.raises(ValueError, match="host_key"):
            default_metrics_key()

    def test_an_unusable_directory_leaves_the_figures_per_process(self, directory, caplog):
        """A directory others may write to is refused: logged once, this process's figures only."""
        Path(directory).chmod(0o777)  # the unsafe directory under test
        reader = HostFigures(lambda: own(4, 1), "test-figures", directory=directory)
        assert reader.host()["pools"]["default"]["c"]["completed"] == 4
        assert "this process's only" in caplog.text
        Path(directory).chmod(0o700)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--server", "gunicorn"], id="gunicorn"),
        pytest.param(["--server", "uvicorn"], id="uvicorn"),
        pytest.param(["--server", "django"], id="django-uvicorn"),
        pytest.param(["--server", "gunicorn", "--multiprocess"], id="gunicorn-multiprocess"),
        pytest.param(["--server", "gunicorn", "--kill-one"], id="gunicorn-worker-killed"),
    ],
)
def test_every_scrape_of_four_workers_reports_the_host(argv):
    """40 logins over 4 real workers (one SIGKILLed after), 12 scrapes: each reads 40."""
    done = subprocess.run(
        [sys.executable, "benchmarks/scrape_consistency.py", *argv],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["completed_per_scrape"] == [40] * 12, result
