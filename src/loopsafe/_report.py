"""Showing what the command line measured: rich tables and progress, JSON, matplotlib plots.

Nothing here measures anything. The JSON documents have stable keys (see
``docs/benchmarks.md``) and a ``schema`` number that changes only when a key
changes meaning or disappears. The progress display redraws only between
measurements (never from a background thread while one runs), so drawing it
adds no loop lag to the figures.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from loopsafe._bench import BenchCell, BenchResult
from loopsafe._calibrate import CalibrateResult, django_settings_code, password_hash_code
from loopsafe._lag import percentile
from loopsafe._measure import bench_extra

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from loopsafe._storm import StormCell, StormResult

__all__ = [
    "SCHEMA",
    "Display",
    "bench_document",
    "bench_plot",
    "bench_table",
    "calibrate_document",
    "calibrate_table",
    "reproducing_command",
    "storm_document",
    "storm_plot",
    "storm_table",
    "write_json",
]

#: Version of the JSON documents' layout.
SCHEMA: Final = 1
#: Columns of the tables when the output is not a terminal.
_LOG_WIDTH: Final = 150
#: A lag line with fewer points than this gets markers (one long stall is one point).
_FEW_POINTS: Final = 20
_VARIANT_COLOURS: Final = {
    "blocking": "#d62728",
    "sync_to_async": "#ff7f0e",
    "loopsafe": "#2ca02c",
}


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


# -- the terminal -------------------------------------------------------------------


class Display:
    """The terminal side of a run: a progress bar, a line per cell, then the table.

    Args:
        stderr: Write to standard error (used when the JSON goes to standard output).
        progress: Show the progress bar (off: only the lines and the table).
    """

    def __init__(self, *, stderr: bool = False, progress: bool = True) -> None:
        """Open a rich console."""
        with bench_extra("the command line's display"):
            from rich.console import Console  # noqa: PLC0415

        self.console: Console = Console(stderr=stderr, highlight=False)
        if not self.console.is_terminal and "COLUMNS" not in os.environ:
            # A log or a pipe: wide enough for the tables, not rich's 80 columns.
            self.console.width = _LOG_WIDTH
        self._show_progress = progress and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> Self:
        """Start the progress bar (drawn only when told, between measurements)."""
        if self._show_progress:
            from rich.progress import (  # noqa: PLC0415
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                auto_refresh=False,  # no drawing thread while a cell is measured
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("preparing", total=None)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Remove the progress bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _update(self, description: str, *, total: int | None = None, completed: int = -1) -> None:
        if self._progress is None or self._task is None:
            return
        if completed >= 0:
            self._progress.update(self._task, description=description, completed=completed)
        else:
            self._progress.update(self._task, description=description)
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.refresh()

    # Observer protocol of run_bench and run_storm.
    def phase(self, text: str) -> None:
        """Show a preparation step."""
        self._update(text)

    def cell_started(self, label: str, index: int, total: int) -> None:
        """Show which cell is being measured."""
        self._update(f"measuring {label}", total=total, completed=index)

    def cell_finished(self, cell: BenchCell | StormCell) -> None:
        """Print one line for the cell just measured."""
        if isinstance(cell, BenchCell):
            self.console.print(
                f"  {cell.algorithm:<14}{cell.variant:<14}{cell.wall_s:7.2f} s  "
                f"ratio {cell.ratio:4.2f}  lag p99 {_ms(cell.lag.p99):>6} ms  "
                f"max {_ms(cell.lag.max):>6} ms"
            )
        else:
            self.console.print(
                f"  {cell.load:>4g}x {cell.variant:<14} goodput {cell.goodput:4.2f}  "
                f"rejected {cell.rejected:5d}  timed out {cell.timed_out:5d}  "
                f"wasted {cell.wasted:4d}"
            )
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
            self._progress.refresh()

    def note(self, text: str) -> None:
        """Print a line of explanation."""
        self.console.print(text, markup=False)

    def show(self, renderable: object) -> None:
        """Print a table (or any rich renderable)."""
        self.console.print(renderable)

    def code(self, text: str) -> None:
        """Print code to paste, plain (no colours or markup to get in the way)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def _params(params: dict[str, int]) -> str:
    return ", ".join(f"{name}={value:,}" for name, value in params.items())


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 1000:  # noqa: PLR2004
        return f"{ms:,.0f}"
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"  # noqa: PLR2004


def _ratio(value: float, good: float) -> str:
    colour = "green" if value >= good else "yellow" if value >= good * 0.6 else "red"
    return f"[{colour}]{value:.2f}[/]"


def bench_table(result: BenchResult) -> Table:
    """Return the bench's results as a rich table: medians per hasher and variant."""
    from rich.table import Table  # noqa: PLC0415 - the Display checked that rich is there

    config = result.config
    title = (
        f"loopsafe bench: {config.users} concurrent logins per cell, profile {config.profile.name}"
        f"{', every login rehashes' if config.rehash else ''}, "
        f"{result.machine.get('usable_cpus')} usable cores"
    )
    table = Table(title=title, title_justify="left")
    for name in [
        "hasher",
        "variant",
        "wall s",
        "logins/s",
        "limit/s",
        "ratio",
        "lag p50 ms",
        "lag p99 ms",
        "lag max ms",
        "peak RSS MiB",
        "CPU share",
    ]:
        table.add_column(name, justify="left" if name in {"hasher", "variant"} else "right")
    previous = None
    for row in result.summary():
        table.add_row(
            row.algorithm if row.algorithm != previous else "",
            row.variant,
            f"{row.wall_s:.2f}",
            f"{row.throughput_per_s:.2f}",
            f"{row.capacity_per_s:.2f}",
            _ratio(row.ratio, 0.95),
            _ms(row.lag_p50_s),
            _ms(row.lag_p99_s),
            _ms(row.lag_max_s),
            f"{row.peak_rss_delta_mib:.0f}",
            f"{row.cpu_share:.2f}",
        )
        previous = row.algorithm
    return table


def storm_table(result: StormResult) -> Table:
    """Return the storm's results as a rich table, one row per load and variant."""
    from rich.table import Table  # noqa: PLC0415

    config = result.config
    title = (
        f"loopsafe storm: {result.algorithm} ({_params(result.params)}), capacity "
        f"{result.capacity_per_s:.2f}/s on {result.machine.get('usable_cpus')} usable cores; "
        f"{config.duration:g} s per cell, client timeout {config.timeout:g} s, "
        f"loopsafe max_queue_wait {result.max_queue_wait:g} s"
    )
    table = Table(title=title, title_justify="left")
    for name in [
        "load",
        "variant",
        "offered/s",
        "goodput",
        "answered",
        "rejected",
        "timed out",
        "wasted",
        "latency p50 ms",
        "latency p99 ms",
        "lag max ms",
        "CPU share",
    ]:
        table.add_column(name, justify="left" if name in {"load", "variant"} else "right")
    for cell in result.cells:
        wasted = str(cell.wasted)
        if cell.pool_abandoned is not None and cell.pool_abandoned != cell.wasted:
            wasted += f" (pool: {cell.pool_abandoned})"
        table.add_row(
            f"{cell.load:g}x",
            cell.variant,
            f"{cell.offered / config.duration:.2f}",
            _ratio(cell.goodput, 0.9 * min(cell.load, 1.0)),
            str(cell.correct),
            str(cell.rejected),
            str(cell.timed_out),
            wasted,
            f"{percentile(cell.latencies, 50) * 1000:.0f}",
            f"{percentile(cell.latencies, 99) * 1000:.0f}",
            _ms(cell.lag.max),
            f"{cell.cpu_share:.2f}",
        )
    return table


def calibrate_table(result: CalibrateResult) -> Table:
    """Return the calibration as a rich table."""
    from rich.table import Table  # noqa: PLC0415

    title = (
        f"loopsafe calibrate: target {result.target_s * 1000:g} ms of CPU per hash, "
        f"{result.machine.get('usable_cpus')} usable cores"
    )
    table = Table(title=title, title_justify="left")
    for name in ["algorithm", "parameters", "CPU ms", "wall ms", "logins/s", "MiB per hash"]:
        table.add_column(name, justify="left" if name in {"algorithm", "parameters"} else "right")
    for item in result.results:
        params = ", ".join(f"{k}={v}" for k, v in item.hasher.params.items())
        if item.note:
            params += f"\n[dim]{item.note}[/]"
        table.add_row(
            item.algorithm,
            params,
            f"{item.cpu_s * 1000:.1f}",
            f"{item.wall_s * 1000:.1f}",
            f"{item.capacity_per_s:.1f}",
            f"{item.memory_bytes / 2**20:.2f}",
        )
    return table


# -- plots ----------------------------------------------------------------------------


def _pyplot() -> Any:  # noqa: ANN401 - matplotlib.pyplot, typed loosely on purpose
    with bench_extra("--plot"):
        import matplotlib as mpl  # noqa: PLC0415

        mpl.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def _lag_series(
    samples: Sequence[tuple[float, float]], bins: int = 200
) -> tuple[list[float], list[float]]:
    """Return the worst lag (ms) in each of up to ``bins`` equal slices of the run.

    Thousands of 5 ms ticks drawn as one line are a solid block; the worst
    tick per slice keeps every stall visible and stays readable. A free
    tick (lag ~0) is shown at 0.01 ms so the log scale keeps it.
    """
    if not samples:
        return [], []
    end = max(t for t, _ in samples)
    width = max(end / bins, 0.05)
    worst: dict[int, float] = {}
    for t, lag in samples:
        slot = int(t / width)
        worst[slot] = max(worst.get(slot, 0.0), lag)
    slots = sorted(worst)
    return [slot * width for slot in slots], [max(worst[slot] * 1000, 0.01) for slot in slots]


def _footer(machine: dict[str, object], command: str) -> str:
    return (
        f"{command}  |  {machine.get('usable_cpus')} usable cores, Python "
        f"{machine.get('python')}, {machine.get('platform')}, {machine.get('date')}"
    )


def bench_plot(result: BenchResult, path: str, command: str) -> None:
    """Save lag over time per hasher and variant, and throughput against the limit."""
    plt = _pyplot()
    costs = result.costs
    columns = max(1, len(costs))
    fig = plt.figure(figsize=(3.4 * columns + 1, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[1.15, 1])
    for column, cost in enumerate(costs):
        axis = fig.add_subplot(grid[0, column])
        for variant in result.config.variants:
            cells = [
                c
                for c in result.cells
                if c.algorithm == cost.algorithm and c.variant == variant and c.repetition == 0
            ]
            if not cells:
                continue
            xs, ys = _lag_series(cells[0].lag_samples)
            axis.plot(
                xs,
                ys,
                marker="o" if len(xs) < _FEW_POINTS else None,  # a stalled loop ticks rarely
                markersize=5,
                linewidth=0.9,
                color=_VARIANT_COLOURS.get(variant),
                label=variant,
                zorder=3 if variant == "loopsafe" else 2,
            )
        axis.set_yscale("log")
        axis.set_ylim(0.05, None)
        axis.set_title(cost.algorithm, fontsize=10)
        axis.set_xlabel("seconds into the burst", fontsize=8)
        if column == 0:
            axis.set_ylabel("worst loop lag per slice, ms (log)", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.grid(visible=True, which="major", alpha=0.3)
    if fig.axes:
        fig.axes[0].legend(fontsize=7, loc="upper right")
    bars = fig.add_subplot(grid[1, :])
    width = 0.8 / max(1, len(result.config.variants))
    summary = result.summary()
    for offset, variant in enumerate(result.config.variants):
        xs, ys = [], []
        for index, cost in enumerate(costs):
            for row in summary:
                if row.algorithm == cost.algorithm and row.variant == variant:
                    xs.append(index + (offset - (len(result.config.variants) - 1) / 2) * width)
                    ys.append(row.ratio)
        drawn = bars.bar(xs, ys, width=width, color=_VARIANT_COLOURS.get(variant), label=variant)
        bars.bar_label(drawn, fmt="%.2f", fontsize=7, padding=1)
    bars.axhline(1.0, color="black", linestyle="--", linewidth=1, label="machine limit")
    bars.axhline(0.95, color="grey", linestyle=":", linewidth=1, label="target 0.95")
    bars.set_xticks(range(len(costs)), [c.algorithm for c in costs])
    bars.set_ylabel("throughput / machine limit")
    bars.set_ylim(0, 1.15)
    bars.legend(fontsize=8, loc="upper left", ncols=5)
    config = result.config
    fig.suptitle(
        f"{config.users} concurrent logins per hasher, profile {config.profile.name}"
        f"{' (every login rehashes)' if config.rehash else ''}",
        fontsize=12,
    )
    fig.text(0.5, -0.01, _footer(result.machine, command), ha="center", fontsize=7, color="grey")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _nearest_load(cells: Sequence[StormCell], wanted: float) -> float:
    loads = sorted({c.load for c in cells})
    return min(loads, key=lambda load: (abs(math.log(load / wanted)), -load))


def storm_plot(result: StormResult, path: str, command: str) -> None:
    """Save goodput and wasted hashes against load, and loop lag at the load nearest 3x."""
    plt = _pyplot()
    fig, (good, waste, lag) = plt.subplots(1, 3, figsize=(15, 4.6), layout="constrained")
    loads = sorted({c.load for c in result.cells})
    ideal = [min(load, 1.0) for load in loads]
    good.plot(loads, ideal, color="black", linestyle="--", linewidth=1, label="ideal min(load, 1)")
    for variant in result.config.variants:
        cells = sorted((c for c in result.cells if c.variant == variant), key=lambda c: c.load)
        colour = _VARIANT_COLOURS.get(variant)
        good.plot(
            [c.load for c in cells], [c.goodput for c in cells], "o-", color=colour, label=variant
        )
        per_s = [c.wasted / result.config.duration for c in cells]
        waste.plot([c.load for c in cells], per_s, "o-", color=colour, label=variant)
    good.set_xscale("log", base=2)
    good.set_xticks(loads, [f"{load:g}x" for load in loads])
    good.set_ylim(0, 1.1)
    good.set_xlabel("offered load (x capacity)")
    good.set_ylabel("goodput / capacity")
    good.set_title("answered within the timeout")
    good.legend(fontsize=8)
    waste.set_xscale("log", base=2)
    waste.set_xticks(loads, [f"{load:g}x" for load in loads])
    waste.set_xlabel("offered load (x capacity)")
    waste.set_ylabel("hashes per second")
    waste.set_title("hashes run for clients that had given up")
    waste.legend(fontsize=8)
    if result.cells:
        at = _nearest_load(result.cells, 3.0)
        for variant in result.config.variants:
            for cell in result.cells:
                if cell.variant == variant and cell.load == at:
                    xs, ys = _lag_series(cell.lag_samples)
                    colour = _VARIANT_COLOURS.get(variant)
                    lag.plot(xs, ys, linewidth=0.9, color=colour, label=variant)
        lag.set_title(f"loop lag at {at:g}x capacity")
    lag.set_yscale("log")
    lag.set_xlabel("seconds into the storm")
    lag.set_ylabel("worst loop lag per slice, ms (log)")
    lag.legend(fontsize=8)
    for axis in (good, waste, lag):
        axis.grid(visible=True, alpha=0.3)
    fig.suptitle(
        f"Open-loop storm: {result.algorithm} ({_params(result.params)}), client timeout "
        f"{result.config.timeout:g} s, {result.config.duration:g} s per cell",
        fontsize=12,
    )
    fig.text(0.5, -0.02, _footer(result.machine, command), ha="center", fontsize=7, color="grey")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
