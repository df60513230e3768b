#!/usr/bin/env python3
"""Check the JSON that `loopsafe bench|storm|calibrate --quick` wrote, key by key.

Usage: python .ci/check_cli_json.py DIR   (DIR holds bench.json, storm.json, calibrate.json, *.png)

The keys are the stable schema-1 keys documented in docs/benchmarks.md; the
figures must be sane (every login answered, storm outcomes add up to what was
offered, loopsafe never runs a hash for a client that gave up when the storm
has no timeouts, lag figures ordered p50 <= p99 <= max).
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

COMMON = {"schema", "kind", "command", "machine", "elapsed_s"}
MACHINE = {
    "usable_cpus", "cpu_count", "python", "implementation", "platform", "loopsafe", "date",
    "kdf_backends",
}  # fmt: skip
BENCH_ROW = {
    "algorithm", "variant", "runs", "users", "correct", "rehashed", "wall_s", "throughput_per_s",
    "capacity_per_s", "ratio", "lag_ms", "peak_rss_delta_mib", "cpu_share",
}  # fmt: skip
STORM_ROW = {
    "variant", "load", "offered", "offered_per_s", "correct", "wrong", "rejected", "timed_out",
    "errors", "window_s", "goodput_per_s", "goodput", "latency_ms", "hashes_run", "wasted",
    "pool_abandoned", "drain_s", "lag_ms", "peak_rss_delta_mib", "cpu_share",
}  # fmt: skip
CALIBRATE_ROW = {
    "algorithm",
    "params",
    "cpu_ms",
    "wall_ms",
    "capacity_per_s",
    "memory_per_hash_mib",
}

#: Goodput above 1 is noise in the capacity estimate; far above it is a bug.
MAX_GOODPUT = 1.5
PLOTS = ("bench.png", "storm.png")

problems: list[str] = []


def need(condition: bool, what: str) -> None:  # noqa: FBT001 - reads as an assertion
    """Record ``what`` as a problem unless ``condition`` holds."""
    if not condition:
        problems.append(what)


def has(where: str, mapping: object, keys: set[str]) -> bool:
    """Whether ``mapping`` is an object with every key; record what is missing."""
    if not isinstance(mapping, dict):
        problems.append(f"{where}: expected an object, got {type(mapping).__name__}")
        return False
    missing = keys - set(mapping)
    need(not missing, f"{where}: missing {sorted(missing)}")
    return not missing


def lag_ordered(where: str, lag: dict[str, float]) -> None:
    """Lag figures must read p50 <= p99 <= max."""
    need(0 <= lag["p50"] <= lag["p99"] <= lag["max"], f"{where}: lag not ordered {lag}")


def check_common(kind: str, doc: dict[str, object]) -> None:
    """The header every document shares."""
    has(kind, doc, COMMON)
    need(doc.get("schema") == 1, f"{kind}: schema {doc.get('schema')!r} != 1")
    need(doc.get("kind") == kind, f"{kind}: kind {doc.get('kind')!r}")
    command = str(doc.get("command", ""))
    need(command.startswith(f"loopsafe {kind}"), f"{kind}: command {command!r}")
    need("--json" not in command, f"{kind}: command names the output file: {command!r}")
    machine = doc.get("machine", {})
    if has(f"{kind}.machine", machine, MACHINE):
        need(int(machine["usable_cpus"]) >= 1, f"{kind}: usable_cpus {machine['usable_cpus']}")  # type: ignore[index]


def check_bench(doc: dict[str, object]) -> None:
    """Every login answered correctly, in each variant; loopsafe and Django measured per core."""
    rows = doc.get("results")
    need(isinstance(rows, list) and len(rows) > 0, "bench: no results")
    variants = set()
    for row in rows if isinstance(rows, list) else []:
        where = f"bench {row.get('algorithm')}/{row.get('variant')}"
        if not has(where, row, BENCH_ROW):
            continue
        variants.add(row["variant"])
        need(row["correct"] == row["users"], f"{where}: {row['correct']} of {row['users']} correct")
        need(row["ratio"] > 0 and math.isfinite(row["ratio"]), f"{where}: ratio {row['ratio']}")
        lag_ordered(where, row["lag_ms"])
    need(
        variants == {"blocking", "sync_to_async", "loopsafe", "django"},
        f"bench: variants {variants}",
    )
    per_core = doc.get("logins_per_core_second")
    need(isinstance(per_core, list) and len(per_core) > 0, "bench: no logins_per_core_second")
    for row in per_core if isinstance(per_core, list) else []:
        logins = row.get("logins_per_core_second", {})
        need(
            (logins.get("loopsafe") or 0) > 0 and (logins.get("django") or 0) > 0,
            f"bench per core {row.get('algorithm')}: {logins}",
        )


def check_storm(doc: dict[str, object]) -> None:
    """Every offered call has exactly one outcome; only loopsafe refuses."""
    rows = doc.get("results")
    need(isinstance(rows, list) and len(rows) > 0, "storm: no results")
    for row in rows if isinstance(rows, list) else []:
        where = f"storm {row.get('load')}x/{row.get('variant')}"
        if not has(where, row, STORM_ROW):
            continue
        outcomes = sum(row[k] for k in ("correct", "wrong", "rejected", "timed_out", "errors"))
        need(
            outcomes == row["offered"], f"{where}: outcomes {outcomes} != offered {row['offered']}"
        )
        need(
            row["wrong"] == row["errors"] == 0,
            f"{where}: wrong/errors {row['wrong']}/{row['errors']}",
        )
        need(0 <= row["wasted"] <= row["hashes_run"], f"{where}: wasted {row['wasted']}")
        need(0 <= row["goodput"] <= MAX_GOODPUT, f"{where}: goodput {row['goodput']}")
        lag_ordered(where, row["lag_ms"])
        if row["variant"] == "loopsafe":
            need(row["pool_abandoned"] is not None, f"{where}: pool_abandoned missing")
            need(row["rejected"] == 0 or row["load"] > 1, f"{where}: rejected under capacity")
        else:
            need(row["rejected"] == 0, f"{where}: sync_to_async cannot reject")


def check_calibrate(doc: dict[str, object]) -> None:
    """Each algorithm got parameters, and both code snippets were produced."""
    rows = doc.get("results")
    need(isinstance(rows, list) and len(rows) > 0, "calibrate: no results")
    for row in rows if isinstance(rows, list) else []:
        where = f"calibrate {row.get('algorithm')}"
        if has(where, row, CALIBRATE_ROW):
            need(row["cpu_ms"] > 0 and row["capacity_per_s"] > 0, f"{where}: {row}")
    need("PasswordHash" in str(doc.get("password_hash", "")), "calibrate: no PasswordHash code")
    need(
        "PASSWORD_HASHERS" in str(doc.get("django_settings", "")), "calibrate: no PASSWORD_HASHERS"
    )


def main() -> int:
    """Check the three documents and the two plots in ``sys.argv[1]``."""
    out = pathlib.Path(sys.argv[1])
    for kind, check in (
        ("bench", check_bench),
        ("storm", check_storm),
        ("calibrate", check_calibrate),
    ):
        doc = json.loads((out / f"{kind}.json").read_text())
        check_common(kind, doc)
        check(doc)
        print(f"cli-smoke: {kind}.json: {len(doc.get('results', []))} rows checked")
    for name in PLOTS:
        plot = out / name
        need(plot.is_file() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: no PNG")
        if plot.is_file():
            print(f"cli-smoke: {name}: {plot.stat().st_size} bytes")
    for problem in problems:
        print(f"cli-smoke: FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
