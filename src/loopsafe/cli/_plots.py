"""The plots: matplotlib figures of loop lag and throughput, each with its command in the footer."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Final

from loopsafe.cli._display import format_params
from loopsafe.cli._measure import bench_extra

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on 3.10 only
    pass

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loopsafe.cli._bench import BenchResult
    from loopsafe.cli._storm import StormCell, StormResult

#: A lag line with fewer points than this gets markers (one long stall is one point).
_FEW_POINTS: Final = 20
_VARIANT_COLOURS: Final = {
    "blocking": "#d62728",
    "sync_to_async": "#ff7f0e",
    "loopsafe": "#2ca02c",
    "django": "#1f77b4",
}


# -- plots ----------------------------------------------------------------------------


def _pyplot() -> Any:  # noqa: ANN401 - matplotlib.pyplot, typed loosely on purpose
    with bench_extra("--plot"):
        import matplotlib as mpl

        mpl.use("Agg")
        import matplotlib.pyplot as plt
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
        f"Open-loop storm: {result.algorithm} ({format_params(result.params)}), client timeout "
        f"{result.config.timeout:g} s, {result.config.duration:g} s per cell",
        fontsize=12,
    )
    fig.text(0.5, -0.02, _footer(result.machine, command), ha="center", fontsize=7, color="grey")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
