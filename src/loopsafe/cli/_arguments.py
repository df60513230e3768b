"""The command line's argument types and shared options: each error message says what is expected.

Every subcommand of ``loopsafe`` (`loopsafe.cli`) checks its values with these
``type=`` callables, so a bad value is refused by argparse (exit status 2)
with a message naming what was expected, before any measurement starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from loopsafe._settings import DEFAULT_NICE, MAX_NICE

__all__ = [
    "PLOT_SUFFIXES",
    "common_options",
    "nice",
    "nice_option",
    "output_file",
    "plot_file",
    "positive_float",
    "positive_int",
]

#: The file types ``--plot`` can draw.
PLOT_SUFFIXES: Final = (".png", ".svg", ".pdf")


def positive_int(text: str) -> int:
    """A whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """A finite positive number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def output_file(text: str) -> str:
    """A file to write in a folder that exists, or ``-`` for standard output."""
    if text == "-":
        return text
    parent = Path(text).expanduser().resolve().parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {str(parent)!r} does not exist")
    return text


def plot_file(text: str) -> str:
    """An `output_file` whose suffix matplotlib draws (`PLOT_SUFFIXES`)."""
    if Path(text).suffix.lower() not in PLOT_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"the plot's file name must end in {', '.join(PLOT_SUFFIXES)}, not {text!r}"
        )
    return output_file(text)


def nice(text: str) -> int:
    """A nice increment for the worker threads, 0 to ``MAX_NICE``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if not 0 <= value <= MAX_NICE:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_NICE}, not {value}")
    return value


def nice_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--nice`` (the pool's worker-thread nice value) to ``parser``."""
    parser.add_argument(
        "--nice",
        type=nice,
        default=DEFAULT_NICE,
        metavar="N",
        help=(
            f"raise loopsafe's worker threads' nice value by N, 0-{MAX_NICE} "
            f"(default {DEFAULT_NICE}, as HashPool; Linux only)"
        ),
    )


def common_options(parser: argparse.ArgumentParser, *, plot: bool = True) -> None:
    """Add ``--quick``, ``--json``, ``--plot`` (unless ``plot`` is False) and ``--no-progress``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run in seconds: cheap parameters, little work (CI)",
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        type=output_file,
        help="write the results as JSON to FILE ('-': standard output)",
    )
    if plot:
        parser.add_argument(
            "--plot",
            metavar="FILE.png",
            type=plot_file,
            help="draw the figures with matplotlib (.png, .svg or .pdf)",
        )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar, only the results"
    )
