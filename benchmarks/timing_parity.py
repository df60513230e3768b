"""Timing parity of the async verify paths (the Django #20760 mitigation), per hasher.

For each hasher this times, on the async path (`PasswordHash.averify` and
`averify_dummy` on a `HashPool`), the answer to:

* unknown user: ``averify_dummy()`` (the caller found no user),
* wrong password,
* unusable password: a ``!``-prefixed hash (Django's ``set_unusable_password``),
* malformed hash: an encoded string no configured hasher claims,
* corrupt hash: the right algorithm's prefix with an unreadable field,
* right password.

An attacker who can tell these apart learns which usernames exist and which
accounts have no usable password. Each case is timed ``--runs`` times, the
cases interleaved in a rotating order so machine noise hits them alike; the
table shows medians and each median as a ratio of the right-password median.

    python benchmarks/timing_parity.py            # Django 6.1 default parameters
    python benchmarks/timing_parity.py --quick    # the cheap test profile
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from loopsafe import HasherNotAvailable, HashPool, PasswordHash, profiles, usable_cpus

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from loopsafe import Hasher

PASSWORD = "parity-password"
CASES = (
    "unknown-user",
    "wrong-password",
    "unusable-password",
    "malformed-hash",
    "corrupt-hash",
    "right-password",
)
#: The cases Django's #20760 mitigation makes alike; corrupt-hash is shown apart.
PARITY_CASES = tuple(case for case in CASES if case != "corrupt-hash")


@dataclass(frozen=True)
class Row:
    """Median seconds per case for one hasher, and the spread of the right-password runs."""

    algorithm: str
    params: str
    medians: dict[str, float]
    runs: int
    right_spread: float  # (max - min) / median of the right-password runs

    def ratios(self) -> dict[str, float]:
        """Each case's median divided by the right-password median."""
        right = self.medians["right-password"]
        return {case: median / right for case, median in self.medians.items()}

    def worst_ratio(self) -> float:
        """The largest factor between a parity case and the right-password median, either way."""
        ratios = self.ratios()
        return max(max(ratios[case], 1 / ratios[case]) for case in PARITY_CASES)


async def measure_hasher(hasher: Hasher, runs: int, pool: HashPool) -> Row:
    """Time the five cases ``runs`` times each, interleaved, on the async path."""
    ph = PasswordHash([hasher], pool=pool)
    stored = await ph.ahash(PASSWORD)
    unusable = "!" + secrets.token_urlsafe(30)
    malformed = "nosuchalgorithm$1$salt$digest"
    corrupt = f"{hasher.algorithm}$not-a-number$salt$digest"
    calls: dict[str, Callable[[], Awaitable[bool]]] = {
        "unknown-user": ph.averify_dummy,
        "wrong-password": lambda: ph.averify("not-" + PASSWORD, stored),
        "unusable-password": lambda: ph.averify(PASSWORD, unusable),
        "malformed-hash": lambda: ph.averify(PASSWORD, malformed),
        "corrupt-hash": lambda: ph.averify(PASSWORD, corrupt),
        "right-password": lambda: ph.averify(PASSWORD, stored),
    }
    for call in calls.values():  # warm-up
        await call()
    times: dict[str, list[float]] = {case: [] for case in CASES}
    for run in range(runs):
        order = CASES[run % len(CASES) :] + CASES[: run % len(CASES)]
        for case in order:
            start = time.perf_counter()
            answer = await calls[case]()
            times[case].append(time.perf_counter() - start)
            if answer is not (case == "right-password"):
                raise AssertionError(f"{hasher.algorithm} {case} answered {answer}")
    right = times["right-password"]
    return Row(
        algorithm=hasher.algorithm,
        params=_params(hasher),
        medians={case: statistics.median(values) for case, values in times.items()},
        runs=runs,
        right_spread=(max(right) - min(right)) / statistics.median(right),
    )


def _params(hasher: Hasher) -> str:
    encoded = hasher.hash(PASSWORD).split("$")
    if hasher.algorithm.startswith("pbkdf2"):
        return f"iterations={encoded[1]}"
    if hasher.algorithm == "argon2":
        return encoded[3]
    if hasher.algorithm.startswith("bcrypt"):
        return f"rounds={encoded[3]}"
    if hasher.algorithm == "scrypt":
        return f"N={encoded[1]},r={encoded[3]},p={encoded[4]}"
    return "-"


async def measure(hashers: Sequence[Hasher], runs: int) -> list[Row]:
    """Measure every available hasher in turn on one pool."""
    rows = []
    async with HashPool(max_queue_wait=None, name="parity") as pool:
        for hasher in hashers:
            try:
                hasher.salt()
            except HasherNotAvailable:
                continue
            rows.append(await measure_hasher(hasher, runs, pool))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Render medians (ms) and ratios to the right-password median as a Markdown table."""
    head = "| hasher | params | " + " | ".join(CASES) + " | worst parity ratio |"
    lines = [head, "|" + "---|" * (len(CASES) + 3)]
    for row in rows:
        ratios = row.ratios()
        cells = [f"{row.medians[c] * 1000:.1f} ms ({ratios[c]:.2f})" for c in CASES]
        lines.append(
            f"| {row.algorithm} | {row.params} | "
            + " | ".join(cells)
            + f" | {row.worst_ratio():.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the cheap test profile")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per case")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    args = parser.parse_args(argv)
    profile = profiles.CHEAP if args.quick else profiles.DJANGO_6_1
    runs = args.runs or (21 if args.quick else 5)
    rows = asyncio.run(measure(profile.hashers(), runs))
    print(
        f"timing parity, async path, profile {profile.name}: medians of {runs} runs, "
        f"{usable_cpus()} cores; (ratio to the right-password median)"
    )
    print(format_table(rows))
    if args.json:
        print(json.dumps([asdict(row) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
