"""The ``loopsafe`` command line: ``bench``, ``storm`` and ``calibrate``.

    loopsafe bench                    # the ticket #36439 table, with loop lag and the limit
    loopsafe bench --rehash           # every login also upgrades its hash
    loopsafe storm --load 3           # an open-loop storm at 3x capacity, 2 s client timeout
    loopsafe storm --flood            # a credential-stuffing flood: FIFO vs keyed admission
    loopsafe calibrate --target-ms 250
    loopsafe bench --quick --json out.json --plot out.png   # a CI smoke run in seconds

Every subcommand prints a table, and with ``--json FILE`` writes a document
whose keys are stable (``docs/benchmarks.md``); ``--plot FILE.png`` draws the
figures. rich, matplotlib, asgiref and psutil come with the ``bench`` extra.
Exit status: 0 when the run completed, 1 when it completed but something was
wrong (a login that should have verified did not, a missing extra), 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Final, TypeVar

from loopsafe import profiles
from loopsafe._limits import container_limits
from loopsafe.cli._arguments import (
    common_options,
    nice_option,
    positive_float,
    positive_int,
)
from loopsafe.cli._measure import MissingExtra

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from loopsafe.cli._display import Display

__all__ = ["build_parser", "main"]

T = TypeVar("T")

PROFILES: Final = {
    "6.1": profiles.DJANGO_6_1,
    "5.2": profiles.DJANGO_5_2,
    "4.2": profiles.DJANGO_4_2,
    "cheap": profiles.CHEAP,
}
_BENCH_ALGORITHMS: Final = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "scrypt")
_BENCH_VARIANTS: Final = ("blocking", "sync_to_async", "loopsafe", "django")
_STORM_VARIANTS: Final = ("sync_to_async", "loopsafe")
_CALIBRATED: Final = ("pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt")

# What --quick changes, when the option itself is not given.
_QUICK_USERS: Final = 8
_QUICK_LOADS: Final = (1.0, 3.0)
_QUICK_DURATION: Final = 1.5
_QUICK_TIMEOUT: Final = 0.5
_QUICK_STORM_HASH_S: Final = 0.02
_QUICK_TARGET_MS: Final = 5.0
#: calibrate --quick: small Argon2 memory and one lane, scrypt p=1, so a 5 ms target is reachable.
_QUICK_FIXED: Final = profiles.Profile(
    "quick", argon2_memory_cost=1024, argon2_parallelism=1, scrypt_parallelism=1
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``loopsafe`` command."""
    parser = argparse.ArgumentParser(
        prog="loopsafe",
        description=(
            "Measure password hashing in async servers: event-loop lag, throughput "
            "against the machine's limit, and goodput under overload."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    bench = commands.add_parser(
        "bench",
        help="concurrent logins per hasher: blocking vs sync_to_async vs loopsafe vs Django",
        description=(
            "Verify N users' passwords at once with each of Django's default hashers, "
            "four ways: on the event loop (Django 4.2/5.2), in the default executor "
            "via asgiref's sync_to_async (Django 6.x), on loopsafe's pool, and with the "
            "installed Django's own acheck_password and stock hasher. First, each hasher's "
            "logins per core-second in loopsafe, Django, pwdlib and passlib, and the floor."
        ),
    )
    bench.add_argument(
        "--users", type=positive_int, help="concurrent logins per cell (default 100)"
    )
    bench.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="the Django version whose default parameters to use (default 6.1)",
    )
    bench.add_argument(
        "--hasher",
        nargs="+",
        choices=_BENCH_ALGORITHMS,
        metavar="ALGORITHM",
        help=f"hashers to run (default all: {', '.join(_BENCH_ALGORITHMS)})",
    )
    bench.add_argument(
        "--variant",
        nargs="+",
        choices=_BENCH_VARIANTS,
        metavar="VARIANT",
        help=f"variants to run (default all: {', '.join(_BENCH_VARIANTS)})",
    )
    bench.add_argument(
        "--rehash",
        action="store_true",
        help="store every hash at a lower cost, so each login also makes a new hash",
    )
    bench.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="repetitions of every cell, in alternating order; figures are medians",
    )
    bench.add_argument(
        "--workers", type=positive_int, help="loopsafe's pool size (default: usable cores)"
    )
    bench.add_argument(
        "--no-per-core",
        dest="per_core",
        action="store_false",
        help="skip the logins-per-core-second comparison between libraries",
    )
    nice_option(bench)
    common_options(bench)

    storm = commands.add_parser(
        "storm",
        help="open-loop Poisson logins at multiples of capacity: goodput, rejections, waste",
        description=(
            "Offer logins on a Poisson schedule at multiples of the measured capacity, "
            "with clients that give up after --timeout, to sync_to_async (Django 6.x) "
            "and to loopsafe's pool with admission control."
        ),
    )
    storm.add_argument(
        "--load",
        nargs="+",
        type=positive_float,
        metavar="X",
        help="offered load as multiples of capacity (default 0.5 1 2 4)",
    )
    storm.add_argument(
        "--duration", type=positive_float, help="seconds of arrivals per cell (default 20)"
    )
    storm.add_argument("--timeout", type=positive_float, help="seconds a client waits (default 2)")
    storm.add_argument(
        "--hasher",
        choices=_BENCH_ALGORITHMS,
        metavar="ALGORITHM",
        help="the hasher (default pbkdf2_sha256, Django's default)",
    )
    storm.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="the Django version whose default parameters to use (default 6.1)",
    )
    storm.add_argument(
        "--variant",
        nargs="+",
        choices=_STORM_VARIANTS,
        metavar="VARIANT",
        help=f"variants to run (default both: {', '.join(_STORM_VARIANTS)})",
    )
    storm.add_argument(
        "--max-queue-wait",
        type=positive_float,
        metavar="S",
        help="loopsafe's admission budget (default: timeout - 2 service times)",
    )
    storm.add_argument(
        "--workers", type=positive_int, help="loopsafe's pool size (default: usable cores)"
    )
    nice_option(storm)
    storm.add_argument("--seed", type=int, default=36439, help="seed of the arrival schedules")
    flood = storm.add_argument_group(
        "flood",
        "--flood: one flooding client (or --scenario rotating: many) against legitimate "
        "users, the pool without keys (FIFO) and with client keys (fair share)",
    )
    flood.add_argument("--flood", action="store_true", help="run the flood comparison")
    flood.add_argument(
        "--flood-load",
        type=positive_float,
        default=10.0,
        metavar="X",
        help="the flood's offered load, x capacity (default 10)",
    )
    flood.add_argument(
        "--legit-load",
        type=positive_float,
        default=0.5,
        metavar="X",
        help="the legitimate users' load together, x capacity (default 0.5)",
    )
    flood.add_argument(
        "--scenario",
        nargs="+",
        choices=("single", "rotating", "devices"),
        help=(
            "single: one flooding key; rotating: spread over --rotating-keys; devices: the "
            "rotating flood against users of whom --returning-share hold a device cookie "
            "(default: single and rotating)"
        ),
    )
    flood.add_argument(
        "--returning-share",
        type=float,
        default=0.5,
        metavar="F",
        help="devices: the share of legitimate logins from returning users (default 0.5)",
    )
    flood.add_argument(
        "--rotating-keys",
        type=positive_int,
        default=200,
        metavar="N",
        help="keys the rotating flood spreads over (default 200)",
    )
    flood.add_argument(
        "--cpu-capacity",
        action="store_true",
        help="scale loads to cores / CPU seconds per hash, not the measured effective capacity",
    )
    common_options(storm)

    calibrate = commands.add_parser(
        "calibrate",
        help="choose each algorithm's cost for a target CPU time on this machine",
        description=(
            "Find PBKDF2 iterations, Argon2 time_cost (at fixed memory), bcrypt rounds and "
            "scrypt N for a target CPU time per hash, and print Django settings and "
            "PasswordHash code that use them."
        ),
    )
    calibrate.add_argument(
        "--target-ms",
        type=positive_float,
        metavar="MS",
        help="CPU milliseconds per hash to aim for (default 250)",
    )
    calibrate.add_argument(
        "--hasher",
        nargs="+",
        choices=_CALIBRATED,
        metavar="ALGORITHM",
        help=f"algorithms (default all: {', '.join(_CALIBRATED)})",
    )
    calibrate.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="where Argon2's memory and lanes and scrypt's r and p come from (default 6.1)",
    )
    calibrate.add_argument(
        "--argon2-lanes",
        type=positive_int,
        metavar="N",
        help=(
            "Argon2 parallelism (default: the profile's; loopsafe computes every lane "
            "count with one thread per worker, so it is free to choose)"
        ),
    )
    calibrate.add_argument(
        "--django-module",
        default="yourapp.hashers",
        metavar="MODULE",
        help="the module named in the printed PASSWORD_HASHERS (default yourapp.hashers)",
    )
    common_options(calibrate, plot=False)
    return parser


def _pick(value: T | None, *, quick: bool, quick_value: T, default: T) -> T:
    """Return the option's value if it was given, else the --quick or the normal default."""
    if value is not None:
        return value
    return quick_value if quick else default


def _finish(
    display: Display,
    args: argparse.Namespace,
    document: dict[str, object],
    plot: Callable[[str, str], None] | None,
) -> None:
    from loopsafe.cli._json import write_json

    if args.json:
        write_json(document, args.json)
        if args.json != "-":
            display.note(f"JSON written to {args.json}")
    if plot is not None and getattr(args, "plot", None):
        plot(args.plot, str(document["command"]))
        display.note(f"plot written to {args.plot}")


def _run_bench(args: argparse.Namespace, argv: Sequence[str], display: Display) -> int:
    from loopsafe.cli._bench import BenchConfig, default_variants, run_bench
    from loopsafe.cli._display import bench_table, per_core_table
    from loopsafe.cli._json import bench_document
    from loopsafe.cli._plots import bench_plot

    profile = PROFILES[_pick(args.profile, quick=args.quick, quick_value="cheap", default="6.1")]
    config = BenchConfig(
        profile=profile,
        users=_pick(args.users, quick=args.quick, quick_value=_QUICK_USERS, default=100),
        rehash=args.rehash,
        repeat=args.repeat,
        algorithms=tuple(args.hasher or _BENCH_ALGORITHMS),
        variants=tuple(args.variant or default_variants()),
        max_workers=args.workers,
        nice=args.nice,
        per_core=args.per_core,
    )
    cells = len(config.algorithms) * len(config.variants) * config.repeat
    display.note(
        f"loopsafe bench: {config.users} concurrent logins x {cells} cells, profile "
        f"{profile.name}{', every login rehashes' if config.rehash else ''}. "
        "Figures are only comparable within one run."
    )
    with display:
        result = run_bench(config, display)
    if result.per_core:
        display.show(per_core_table(result))
    display.show(bench_table(result))
    measured = [c for c in result.costs if c.ceiling is not None]
    if measured:
        ceilings = ", ".join(f"{c.algorithm} {c.ceiling:.2f}" for c in measured)
        display.note(
            "ceiling (single-thread CPU per login / CPU per login with every core busy: "
            f"the best ratio this machine allows): {ceilings}"
        )
    for algorithm, reason in result.skipped.items():
        display.note(f"skipped {algorithm}: {reason}")
    display.note(f"done in {result.elapsed_s:.1f} s")
    document = bench_document(result, argv)
    _finish(display, args, document, lambda path, cmd: bench_plot(result, path, cmd))
    wrong = [c for c in result.cells if c.correct != c.users]
    if wrong:
        display.note(f"error: {len(wrong)} cell(s) had logins that did not verify")
        return 1
    return 0


def _run_flood(args: argparse.Namespace, argv: Sequence[str], display: Display) -> int:
    from loopsafe.cli._flood import (
        DEFAULT_SCENARIOS,
        FloodConfig,
        flood_document,
        flood_table,
        run_flood,
    )
    from loopsafe.cli._json import reproducing_command

    hasher = None
    if args.quick and args.profile is None:
        from loopsafe.cli._calibrate import pbkdf2_for

        hasher, _, _ = pbkdf2_for(_QUICK_STORM_HASH_S, repeats=3)
    config = FloodConfig(
        profile=PROFILES[args.profile or "6.1"],
        algorithm=args.hasher or "pbkdf2_sha256",
        flood_load=args.flood_load,
        legit_load=args.legit_load,
        rotating_keys=args.rotating_keys,
        duration=_pick(args.duration, quick=args.quick, quick_value=_QUICK_DURATION, default=30.0),
        timeout=_pick(args.timeout, quick=args.quick, quick_value=_QUICK_TIMEOUT, default=2.0),
        scenarios=tuple(args.scenario or DEFAULT_SCENARIOS),
        returning_share=args.returning_share,
        seed=args.seed,
        max_workers=args.workers,
        max_queue_wait=args.max_queue_wait,
        nice=args.nice,
        hasher=hasher,
        effective=not args.cpu_capacity,
    )
    cells = 1 + 2 * len(config.scenarios)
    display.note(
        f"loopsafe storm --flood: {cells} cells of {config.duration:g} s, client timeout "
        f"{config.timeout:g} s. Figures are only comparable within one run."
    )
    with display:
        result = run_flood(config, display.phase)
    display.code(flood_table(result))
    document = flood_document(result, reproducing_command("loopsafe storm", argv))
    _finish(display, args, document, None)
    broken = sum(figures.errors for cell in result.cells for figures in cell.classes.values())
    if broken:
        display.note(f"error: {broken} call(s) answered wrongly or failed")
        return 1
    return 0


def _run_storm(args: argparse.Namespace, argv: Sequence[str], display: Display) -> int:
    if args.flood:
        return _run_flood(args, argv, display)
    from loopsafe.cli._display import storm_table
    from loopsafe.cli._json import storm_document
    from loopsafe.cli._plots import storm_plot
    from loopsafe.cli._storm import StormConfig, expected_seconds, run_storm

    hasher = None
    if args.quick and args.profile is None:
        from loopsafe.cli._calibrate import pbkdf2_for

        # The cheap profile's hashes take microseconds: the arrival rate would
        # measure the event loop, not the pool. Size PBKDF2 to ~20 ms instead.
        hasher, _, _ = pbkdf2_for(_QUICK_STORM_HASH_S, repeats=3)
        if args.hasher not in {None, "pbkdf2_sha256"}:
            display.note("--quick without --profile always storms a PBKDF2 sized to ~20 ms")
    config = StormConfig(
        profile=PROFILES[args.profile or "6.1"],
        algorithm=args.hasher or "pbkdf2_sha256",
        loads=tuple(args.load or (_QUICK_LOADS if args.quick else (0.5, 1.0, 2.0, 4.0))),
        duration=_pick(args.duration, quick=args.quick, quick_value=_QUICK_DURATION, default=20.0),
        timeout=_pick(args.timeout, quick=args.quick, quick_value=_QUICK_TIMEOUT, default=2.0),
        variants=tuple(args.variant or _STORM_VARIANTS),
        seed=args.seed,
        max_workers=args.workers,
        max_queue_wait=args.max_queue_wait,
        nice=args.nice,
        hasher=hasher,
    )
    display.note(
        f"loopsafe storm: {len(config.loads) * len(config.variants)} cells of "
        f"{config.duration:g} s, client timeout {config.timeout:g} s: about "
        f"{expected_seconds(config):.0f} s in all. Figures are only comparable within one run."
    )
    with display:
        try:
            result = run_storm(config, display)
        except ValueError as exc:
            display.note(f"error: {exc}")
            return 1
    display.show(storm_table(result))
    display.note(f"done in {result.elapsed_s:.1f} s")
    document = storm_document(result, argv)
    _finish(display, args, document, lambda path, cmd: storm_plot(result, path, cmd))
    broken = sum(c.wrong + c.errors for c in result.cells)
    if broken:
        display.note(f"error: {broken} call(s) answered wrongly or failed")
        return 1
    return 0


def _run_calibrate(args: argparse.Namespace, argv: Sequence[str], display: Display) -> int:
    from loopsafe.cli._calibrate import (
        calibrate,
        django_settings_code,
        password_hash_code,
        worst_case,
    )
    from loopsafe.cli._display import calibrate_table
    from loopsafe.cli._json import calibrate_document

    target_ms = _pick(args.target_ms, quick=args.quick, quick_value=_QUICK_TARGET_MS, default=250.0)
    if args.profile is not None:
        fixed = PROFILES[args.profile]
    else:
        fixed = _QUICK_FIXED if args.quick else profiles.DEFAULT
    if args.argon2_lanes:
        fixed = dataclasses.replace(fixed, argon2_parallelism=args.argon2_lanes)
    display.note(f"loopsafe calibrate: aiming for {target_ms:g} ms of CPU per hash")
    display.note(f"limits: {container_limits().describe()}")
    with display:
        result = calibrate(
            target_ms / 1000,
            algorithms=tuple(args.hasher or _CALIBRATED),
            fixed=fixed,
            on_algorithm=lambda name: display.phase(f"calibrating {name}"),
        )
    display.show(calibrate_table(result))
    display.note(worst_case(result))
    for algorithm, reason in result.skipped.items():
        display.note(f"skipped {algorithm}: {reason}")
    if result.results:
        display.note("\nDjango: paste into your project")
        display.code(django_settings_code(result, args.django_module))
        display.note("FastAPI, Starlette or any async code: loopsafe's PasswordHash")
        display.code(password_hash_code(result))
    document = calibrate_document(result, argv)
    _finish(display, args, document, None)
    return 0


_COMMANDS: Final = {"bench": _run_bench, "storm": _run_storm, "calibrate": _run_calibrate}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``loopsafe`` command line and return its exit status.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when a run found a problem or an extra is missing,
        2 for bad arguments (argparse prints the message).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except SystemExit as stop:  # argparse exits for --help (0) and errors (2)
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    try:
        from loopsafe.cli._display import Display

        display = Display(stderr=args.json == "-", progress=not args.no_progress)
        status = _COMMANDS[args.command](args, arguments[1:], display)
    except MissingExtra as exc:
        print(f"loopsafe {args.command}: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's output
        return 1
    except KeyboardInterrupt:
        print(f"loopsafe {args.command}: interrupted", file=sys.stderr)  # noqa: T201
        return 130
    return status
