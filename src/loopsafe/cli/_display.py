"""The terminal: rich progress between measurements, and the result tables.

The progress display redraws only between measurements (never from a
background thread while one runs), so drawing it adds no loop lag to the figures.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Final

from loopsafe._lag import percentile
from loopsafe.cli._bench import BenchCell, BenchResult
from loopsafe.cli._measure import bench_extra, kdf_note

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import Self

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from loopsafe.cli._calibrate import CalibrateResult
    from loopsafe.cli._storm import StormCell, StormResult

#: Columns of the tables when the output is not a terminal.
_LOG_WIDTH: Final = 150

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
            from rich.console import Console

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
            from rich.progress import (
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


def format_params(params: dict[str, int]) -> str:
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
    from rich.table import Table

    config = result.config
    title = (
        f"loopsafe bench: {config.users} concurrent logins per cell, profile {config.profile.name}"
        f"{', every login rehashes' if config.rehash else ''}, "
        f"{result.machine.get('usable_cpus')} usable cores; {kdf_note(result.machine)}"
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


def per_core_table(result: BenchResult) -> Table:
    """Return logins per core-second per hasher and library, with the floor, as a rich table."""
    from rich.table import Table

    from loopsafe.cli._per_core import LIBRARIES, django_label

    title = (
        f"logins per core-second (1 / CPU s of one verification, median of 3), profile "
        f"{result.config.profile.name}, {result.machine.get('usable_cpus')} usable cores; "
        f"django = {django_label()} acheck_password; {kdf_note(result.machine)}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("hasher")
    for name in LIBRARIES:
        table.add_column(name, justify="right")
    table.add_column("loopsafe / django", justify="right")
    table.add_column("floor", justify="left")
    for row in result.per_core:
        cells = [
            "—" if row.logins.get(name) is None else f"{row.logins[name]:.2f}" for name in LIBRARIES
        ]
        ours, django = row.logins.get("loopsafe"), row.logins.get("django")
        speedup = "—" if not ours or not django else f"{ours / django:.2f}x"
        table.add_row(row.algorithm, *cells, speedup, f"[dim]{row.notes.get('floor', '')}[/]")
    return table


def storm_table(result: StormResult) -> Table:
    """Return the storm's results as a rich table, one row per load and variant."""
    from rich.table import Table

    config = result.config
    title = (
        f"loopsafe storm: {result.algorithm} ({format_params(result.params)}), capacity "
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
    from rich.table import Table

    title = (
        f"loopsafe calibrate: target {result.target_s * 1000:g} ms of CPU per hash, "
        f"{result.machine.get('usable_cpus')} usable cores; {kdf_note(result.machine)}"
    )
    table = Table(title=title, title_justify="left")
    for name in ["algorithm", "parameters", "CPU ms", "wall ms", "logins/s", "MiB per hash"]:
        table.add_column(name, justify="left" if name in {"algorithm", "parameters"} else "right")
    for item in result.results:
        params = ", ".join(f"{k}={v}" for k, v in item.hasher.params.items())
        if item.note:
            params += f"\n[dim]{item.note}[/]"
        if item.cpu_s_by_lanes:
            costs = ", ".join(
                f"{lanes}: {cpu * 1000:.0f}" for lanes, cpu in item.cpu_s_by_lanes.items()
            )
            params += f"\n[dim]CPU ms by lanes (one thread each, as on the pool) {costs}[/]"
        table.add_row(
            item.algorithm,
            params,
            f"{item.cpu_s * 1000:.1f}",
            f"{item.wall_s * 1000:.1f}",
            f"{item.capacity_per_s:.1f}",
            f"{item.memory_bytes / 2**20:.2f}",
        )
    return table
