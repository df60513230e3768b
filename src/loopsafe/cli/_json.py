"""The JSON documents the command line writes: stable keys (see docs/benchmarks.md), a schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from loopsafe.cli._calibrate import CalibrateResult, django_settings_code, password_hash_code

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loopsafe.cli._bench import BenchResult
    from loopsafe.cli._storm import StormResult

#: Version of the JSON documents' layout.
SCHEMA: Final = 1

# -- JSON -------------------------------------------------------------------------


#: Options that only say where the output goes: left out of the recorded command.
_OUTPUT_OPTIONS: Final = {"--json": True, "--plot": True, "--no-progress": False}


def reproducing_command(program: str, argv: Sequence[str]) -> str:
    """Return the command that reproduces a run's figures: ``program`` and argv without output.

    ``--json FILE``, ``--plot FILE`` and ``--no-progress`` change where the
    figures go, not what they are (and a file name may be a local path).

    Args:
        program: What runs it, e.g. ``loopsafe bench`` or
            ``python benchmarks/e2e/run.py``.
        argv: The arguments after it.
    """
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _OUTPUT_OPTIONS:
            skip = _OUTPUT_OPTIONS[name] and "=" not in arg
            continue
        kept.append(arg)
    return " ".join([program, *kept])


def _header(kind: str, argv: Sequence[str], machine: dict[str, object]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": kind,
        "command": reproducing_command(f"loopsafe {kind}", argv),
        "machine": machine,
    }


def bench_document(result: BenchResult, argv: Sequence[str]) -> dict[str, Any]:
    """Return the JSON document of a ``loopsafe bench`` run."""
    doc = _header("bench", argv, result.machine)
    doc["config"] = result.config.as_dict()
    doc["hashers"] = [
        {
            "algorithm": cost.algorithm,
            "params": cost.params,
            "stored_params": cost.stored_params,
            "cpu_s_per_login": round(cost.cpu_s_per_login, 5),
            "capacity_per_s": round(cost.capacity_per_s, 3),
            "cpu_s_per_login_all_busy": None
            if cost.cpu_s_per_login_all_busy is None
            else round(cost.cpu_s_per_login_all_busy, 5),
            "ceiling": None if cost.ceiling is None else round(cost.ceiling, 3),
        }
        for cost in result.costs
    ]
    doc["skipped"] = result.skipped
    doc["logins_per_core_second"] = [row.as_dict() for row in result.per_core]
    doc["results"] = [row.as_dict() for row in result.summary()]
    doc["runs"] = [cell.as_dict() for cell in result.cells]
    doc["elapsed_s"] = round(result.elapsed_s, 2)
    return doc


def storm_document(result: StormResult, argv: Sequence[str]) -> dict[str, Any]:
    """Return the JSON document of a ``loopsafe storm`` run."""
    config = result.config
    doc = _header("storm", argv, result.machine)
    doc["config"] = {
        "profile": config.profile.name if config.hasher is None else "custom",
        "algorithm": result.algorithm,
        "loads": list(config.loads),
        "duration_s": config.duration,
        "timeout_s": config.timeout,
        "variants": list(config.variants),
        "seed": config.seed,
        "max_workers": result.max_workers,
        "max_queue_wait_s": result.max_queue_wait,
        "nice": config.nice,
        "queue_rule": "max(timeout - 2 * service_s, timeout / 4)"
        if config.max_queue_wait is None
        else "given",
    }
    doc["hasher"] = {
        "algorithm": result.algorithm,
        "params": result.params,
        "cpu_s_per_hash": round(result.cpu_s_per_hash, 5),
        "service_s": round(result.service_s, 5),
        "capacity_per_s": round(result.capacity_per_s, 3),
    }
    doc["results"] = [cell.as_dict(config.duration) for cell in result.cells]
    doc["elapsed_s"] = round(result.elapsed_s, 2)
    return doc


def calibrate_document(result: CalibrateResult, argv: Sequence[str]) -> dict[str, Any]:
    """Return the JSON document of a ``loopsafe calibrate`` run."""
    doc = _header("calibrate", argv, result.machine)
    doc["config"] = {"target_ms": round(result.target_s * 1000, 3)}
    doc["results"] = [item.as_dict() for item in result.results]
    doc["skipped"] = result.skipped
    doc["django_settings"] = django_settings_code(result)
    doc["password_hash"] = password_hash_code(result)
    doc["elapsed_s"] = round(result.elapsed_s, 2)
    return doc


def write_json(document: dict[str, Any], destination: str) -> None:
    """Write ``document`` to the file ``destination``, or to standard output for ``-``."""
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    if destination == "-":
        sys.stdout.write(text)
    else:
        Path(destination).write_text(text, encoding="utf-8")
