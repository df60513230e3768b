"""Smoke tests of the ``loopsafe`` command line: quick runs, their JSON, and bad arguments.

Timing figures are never asserted here (the machine is shared and noisy): the
tests pin down that each subcommand runs, writes the documented keys, keeps
its books balanced, and refuses bad arguments with exit status 2.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loopsafe import profiles
from loopsafe._settings import usable_cpus
from loopsafe.cli import main
from loopsafe.cli._json import reproducing_command
from loopsafe.cli._measure import cpu_seconds, cpu_seconds_all_busy, lower_cost
from loopsafe.cli._storm import poisson_arrivals, queue_budget

MACHINE_KEYS = {"usable_cpus", "cpu_count", "python", "platform", "date", "loopsafe"}
LAG_KEYS = {"p50", "p99", "max"}


def run_json(capsys, tmp_path, *argv: str) -> dict:
    """Run the CLI in-process with ``--json`` and return the document it wrote."""
    out = tmp_path / "out.json"
    status = main([*argv, "--no-progress", "--json", str(out)])
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    document = json.loads(out.read_text())
    assert document["schema"] == 1
    assert set(document["machine"]) >= MACHINE_KEYS
    assert document["command"].startswith(f"loopsafe {argv[0]}")
    return document


def test_bench_quick_writes_documented_json_and_plot(capsys, tmp_path):
    """bench --quick writes every documented key, a PNG, and every login verifies."""
    plot = tmp_path / "bench.png"
    document = run_json(capsys, tmp_path, "bench", "--quick", "--plot", str(plot))
    assert document["kind"] == "bench"
    assert document["config"]["profile"] == "cheap"
    assert document["config"]["nice"] == 10  # HashPool's default, recorded
    assert {h["algorithm"] for h in document["hashers"]} <= {
        "pbkdf2_sha256",
        "pbkdf2_sha1",
        "argon2",
        "bcrypt_sha256",
        "scrypt",
    }
    for hasher in document["hashers"]:
        assert {"params", "stored_params", "cpu_s_per_login", "capacity_per_s"} <= set(hasher)
    variants = {row["variant"] for row in document["results"]}
    assert variants == {"blocking", "sync_to_async", "loopsafe", "django"}
    assert document["machine"]["kdf_backends"]["pbkdf2"]["backend"] in {"hashlib", "cryptography"}
    per_core = {row["algorithm"]: row for row in document["logins_per_core_second"]}
    assert set(per_core) == {h["algorithm"] for h in document["hashers"]}
    for row in per_core.values():
        logins = row["logins_per_core_second"]
        assert set(logins) == {"loopsafe", "django", "pwdlib", "passlib", "floor"}
        assert logins["loopsafe"] > 0
        assert logins["django"] > 0
    assert per_core["pbkdf2_sha256"]["logins_per_core_second"]["floor"] > 0
    assert per_core["argon2"]["logins_per_core_second"]["pwdlib"] > 0
    for row in document["results"]:
        assert {
            "algorithm",
            "runs",
            "users",
            "wall_s",
            "throughput_per_s",
            "capacity_per_s",
            "ratio",
            "peak_rss_delta_mib",
        } <= set(row)
        assert set(row["lag_ms"]) >= LAG_KEYS
        assert row["correct"] == row["users"]
    assert len(document["runs"]) == len(document["results"])
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_bench_rehash_makes_a_new_hash_per_login(capsys, tmp_path):
    """bench --rehash stores cheaper hashes, so every login of every variant rehashes."""
    document = run_json(
        capsys, tmp_path, "bench", "--quick", "--rehash", "--hasher", "pbkdf2_sha256", "scrypt"
    )
    for hasher in document["hashers"]:
        assert hasher["stored_params"] != hasher["params"]
    for row in document["results"]:
        assert row["rehashed"] == row["users"] == row["correct"], row["variant"]


def test_bench_repeat_alternates_variant_order(capsys, tmp_path):
    """bench --repeat 2 runs each variant in a different place of the order each time."""
    document = run_json(
        capsys, tmp_path, "bench", "--quick", "--hasher", "pbkdf2_sha256", "--repeat", "2"
    )
    first = [r["variant"] for r in document["runs"] if r["repetition"] == 0]
    second = [r["variant"] for r in document["runs"] if r["repetition"] == 1]
    assert sorted(first) == sorted(second)
    assert first != second
    assert all(row["runs"] == 2 for row in document["results"])


def test_storm_quick_accounts_for_every_call(capsys, tmp_path):
    """storm --quick: every offered call is answered, refused, timed out or failed, once."""
    document = run_json(
        capsys, tmp_path, "storm", "--quick", "--load", "3", "--duration", "1", "--nice", "0"
    )
    assert document["kind"] == "storm"
    assert document["config"]["nice"] == 0
    assert {"max_queue_wait_s", "timeout_s", "duration_s", "loads", "queue_rule"} <= set(
        document["config"]
    )
    assert {"cpu_s_per_hash", "service_s", "capacity_per_s", "params"} <= set(document["hasher"])
    assert {row["variant"] for row in document["results"]} == {"sync_to_async", "loopsafe"}
    for row in document["results"]:
        settled = row["correct"] + row["wrong"] + row["rejected"] + row["timed_out"] + row["errors"]
        assert settled == row["offered"]
        assert row["wrong"] == row["errors"] == 0
        assert 0 <= row["wasted"] <= row["hashes_run"]
        assert {"goodput", "goodput_per_s", "drain_s", "peak_rss_delta_mib"} <= set(row)
        assert row["window_s"] >= document["config"]["duration_s"]
        assert set(row["lag_ms"]) >= LAG_KEYS
        assert set(row["latency_ms"]) >= LAG_KEYS
        if row["variant"] == "loopsafe":
            assert isinstance(row["pool_abandoned"], int)
        else:
            assert row["pool_abandoned"] is None
            assert row["rejected"] == 0  # the default executor never refuses


def test_calibrate_quick_prints_code_that_runs(capsys, tmp_path):
    """calibrate --quick writes the documented keys and code that compiles and builds hashers."""
    document = run_json(capsys, tmp_path, "calibrate", "--quick")
    assert document["kind"] == "calibrate"
    assert document["config"]["target_ms"] == 5
    for row in document["results"]:
        assert {
            "algorithm",
            "params",
            "cpu_ms",
            "wall_ms",
            "capacity_per_s",
            "memory_per_hash_mib",
            "note",
        } <= set(row)
        assert row["cpu_ms"] > 0
    assert "PASSWORD_HASHERS = [" in document["django_settings"]
    compile(document["django_settings"], "hashers.py", "exec")
    namespace: dict[str, object] = {}
    exec(document["password_hash"], namespace)  # noqa: S102 - the code the CLI prints, run as a user would
    password_hash = namespace["password_hash"]
    assert password_hash.verify("pw", password_hash.hash("pw"))


@pytest.mark.slow
def test_calibrate_argon2_lanes(capsys, tmp_path):
    """Argon2 keeps the profile's lanes, reports each lane count's cost; --argon2-lanes chooses."""
    common = ["calibrate", "--profile", "6.1", "--hasher", "argon2", "--target-ms", "5"]
    document = run_json(capsys, tmp_path, *common)
    row = document["results"][0]
    assert row["params"]["parallelism"] == profiles.DJANGO_6_1.argon2_parallelism
    assert set(row["cpu_ms_by_lanes"]) == {"1", "2", "4", "8"}
    assert all(cpu > 0 for cpu in row["cpu_ms_by_lanes"].values())
    document = run_json(capsys, tmp_path, *common, "--argon2-lanes", "3")
    assert document["results"][0]["params"]["parallelism"] == 3
    assert set(document["results"][0]["cpu_ms_by_lanes"]) == {"1", "2", "3", "4", "8"}
    assert "parallelism=3" in document["django_settings"] + document["password_hash"]


def test_json_to_stdout_keeps_the_table_on_stderr(capsys):
    """--json - prints only the JSON document on standard output."""
    status = main(["calibrate", "--quick", "--hasher", "pbkdf2_sha256", "--json", "-"])
    captured = capsys.readouterr()
    assert status == 0
    assert json.loads(captured.out)["kind"] == "calibrate"
    assert "calibrate" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "required: COMMAND", id="no-command"),
        pytest.param(["frobnicate"], "invalid choice", id="unknown-command"),
        pytest.param(["bench", "--users", "0"], "must be at least 1", id="zero-users"),
        pytest.param(["bench", "--users", "many"], "expected a whole number", id="word-users"),
        pytest.param(["bench", "--profile", "7.0"], "invalid choice", id="unknown-profile"),
        pytest.param(["bench", "--hasher", "md4"], "invalid choice", id="unknown-hasher"),
        pytest.param(["bench", "--plot", "out.txt"], "must end in .png", id="plot-not-an-image"),
        pytest.param(["storm", "--load", "-1"], "must be a positive number", id="negative-load"),
        pytest.param(["storm", "--timeout", "0"], "must be a positive number", id="zero-timeout"),
        pytest.param(["storm", "--duration", "inf"], "positive number", id="endless-storm"),
        pytest.param(["calibrate", "--target-ms", "abc"], "expected a number", id="word-target"),
        pytest.param(["calibrate", "--plot", "x.png"], "unrecognized", id="calibrate-no-plot"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(capsys, argv, message):
    """Bad arguments return exit status 2 and say what is wrong, before any work."""
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_json_into_a_missing_folder_is_refused(capsys, tmp_path):
    """--json into a folder that does not exist fails at once, not after the run."""
    assert main(["bench", "--json", str(tmp_path / "missing" / "out.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_bench_extra_names_the_install_command(capsys, monkeypatch):
    """Without rich the CLI exits 1 and says: pip install 'loopsafe[bench]'."""
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["calibrate", "--quick"]) == 1
    assert "pip install 'loopsafe[bench]'" in capsys.readouterr().err


def test_python_m_loopsafe_lists_the_commands():
    """python -m loopsafe --help runs the same CLI and names the three commands."""
    done = subprocess.run(
        [sys.executable, "-m", "loopsafe", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    for command in ("bench", "storm", "calibrate"):
        assert command in done.stdout


@pytest.mark.parametrize(
    ("timeout", "service", "budget"),
    [
        pytest.param(2.0, 0.36, 1.28, id="django-pbkdf2-2s-client"),
        pytest.param(2.0, 0.9, 0.5, id="slow-hash-keeps-a-quarter"),
        pytest.param(0.5, 0.02, 0.46, id="quick-storm"),
    ],
)
def test_queue_budget_leaves_two_service_times(timeout, service, budget):
    """queue_budget is timeout - 2 service times, and at least a quarter of the timeout."""
    assert queue_budget(timeout, service) == pytest.approx(budget)


def test_poisson_arrivals_are_bounded_and_seeded():
    """poisson_arrivals stays inside the window, repeats with a seed, and refuses huge storms."""
    import random

    first = poisson_arrivals(50.0, 2.0, random.Random(1))
    assert first == poisson_arrivals(50.0, 2.0, random.Random(1))
    assert all(0 <= t < 2.0 for t in first)
    assert 50 < len(first) < 150
    with pytest.raises(ValueError, match="more than a storm cell may schedule"):
        poisson_arrivals(1e6, 10.0, random.Random(1))


@pytest.mark.parametrize("hasher", profiles.CHEAP.hashers(), ids=lambda h: h.algorithm)
def test_lower_cost_hashes_need_an_update(hasher):
    """lower_cost makes hashes that the profile's hasher verifies and wants to upgrade."""
    stored = lower_cost(hasher).hash("pw")
    assert hasher.verify("pw", stored)
    assert hasher.must_update(stored)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        pytest.param(["--users", "5"], "loopsafe bench --users 5", id="kept"),
        pytest.param(
            ["--json", "a.json", "--plot", "b.png", "--no-progress", "--repeat", "2"],
            "loopsafe bench --repeat 2",
            id="output-options-dropped",
        ),
        pytest.param(
            ["--json=-", "--plot=x.png", "--rehash"], "loopsafe bench --rehash", id="equals"
        ),
    ],
)
def test_recorded_command_leaves_out_where_output_goes(argv, command):
    """The JSON's command reproduces the figures without naming local output files."""
    assert reproducing_command("loopsafe bench", argv) == command


def test_cpu_with_every_core_busy():
    """The all-cores-busy cost of a real hash is close to its single-thread cost, never zero."""
    import hashlib

    def work() -> bytes:
        return hashlib.pbkdf2_hmac("sha256", b"pw", b"salt" * 4, 100_000)

    single = cpu_seconds(work)
    busy = cpu_seconds_all_busy(work, usable_cpus())
    assert busy > 0
    assert 0.5 * single < busy < 3 * single  # loose: a shared machine
    with pytest.raises(ValueError, match="at least 1"):
        cpu_seconds_all_busy(work, 0)


def test_bench_records_the_ceiling_only_for_real_costs(capsys, tmp_path):
    """Cheap hashes get no ceiling (thread starts would dominate); a real one gets one."""
    document = run_json(capsys, tmp_path, "bench", "--quick", "--hasher", "pbkdf2_sha256")
    assert document["hashers"][0]["ceiling"] is None
    document = run_json(
        capsys, tmp_path, "bench", "--profile", "4.2", "--hasher", "pbkdf2_sha1",
        "--variant", "loopsafe", "--users", "2",
    )  # fmt: skip
    cost = document["hashers"][0]
    assert 0 < cost["ceiling"] <= 1
    assert cost["cpu_s_per_login_all_busy"] > 0
