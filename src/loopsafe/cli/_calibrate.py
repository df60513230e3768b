"""``loopsafe calibrate``: choose each algorithm's cost for a target CPU time on this machine.

For each algorithm one parameter moves and the others stay as given (Django's
defaults unless told otherwise):

* PBKDF2-SHA256: iterations (the cost is linear in them),
* Argon2id: time_cost at a fixed memory_cost and parallelism (linear),
* bcrypt-SHA256: rounds (each one doubles the cost),
* scrypt: N, a power of two, at fixed r and p (linear in N).

The search measures a cheap setting, predicts the parameter from the cost
model, measures the prediction and corrects it once; every figure is the
median CPU time (``time.process_time``, all threads) of single-threaded hashes
after a warm-up. The result says what the machine can take at that cost
(usable cores / CPU seconds per hash), the memory one hash in flight needs,
and prints ready-to-paste Django settings and `PasswordHash` code.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from loopsafe import profiles
from loopsafe._settings import host_limit_from_env, usable_cpus
from loopsafe.cli._measure import cpu_seconds, machine_info
from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import (
    Argon2Hasher,
    BCryptSHA256Hasher,
    Hasher,
    PBKDF2Hasher,
    ScryptHasher,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CALIBRATED_ALGORITHMS",
    "CalibrateResult",
    "Calibrated",
    "calibrate",
    "django_settings_code",
    "memory_per_hash",
    "password_hash_code",
    "pbkdf2_for",
    "worst_case",
]

#: The algorithms calibrated, in Django's default order (PBKDF2-SHA1 only
#: verifies old hashes in Django's list, so it needs no cost of its own).
CALIBRATED_ALGORITHMS: tuple[str, ...] = ("pbkdf2_sha256", "argon2", "bcrypt_sha256", "scrypt")
_MIB: Final = 2**20
#: (at least, round to): 1,230,000 rather than 1,234,567.
_ITERATION_STEPS: Final = ((100_000, 10_000), (10_000, 1_000))
#: OpenSSL's default scrypt memory limit, which Django's hasher keeps (maxmem=0).
_OPENSSL_SCRYPT_MAXMEM: Final = 32 * _MIB
_DJANGO_CLASSES: Final = {
    "pbkdf2_sha256": "PBKDF2PasswordHasher",
    "argon2": "Argon2PasswordHasher",
    "bcrypt_sha256": "BCryptSHA256PasswordHasher",
    "scrypt": "ScryptPasswordHasher",
}
_LOOPSAFE_CLASSES: Final = {
    "pbkdf2_sha256": "PBKDF2Hasher",
    "argon2": "Argon2Hasher",
    "bcrypt_sha256": "BCryptSHA256Hasher",
    "scrypt": "ScryptHasher",
}


@dataclass(frozen=True)
class Calibrated:
    """One algorithm's chosen cost and what it means on this machine.

    Attributes:
        algorithm: Django's algorithm name.
        hasher: A hasher with the chosen parameters.
        cpu_s: Median CPU seconds of one hash at those parameters.
        wall_s: Median wall seconds of one hash alone (computed as on a pool
            worker: Argon2's lanes by one thread).
        capacity_per_s: Usable cores / ``cpu_s``: hashes (logins) per second.
        memory_bytes: Memory one hash in flight needs (from the parameters).
        note: Why the target could not be met, if it could not.
        cpu_s_by_lanes: Argon2 only: median CPU seconds of one hash at the
            chosen time and memory cost for each lane count (1, 2, 4, 8 and
            the chosen one), computed as on a pool worker.
    """

    algorithm: str
    hasher: Hasher
    cpu_s: float
    wall_s: float
    capacity_per_s: float
    memory_bytes: int
    note: str | None = None
    cpu_s_by_lanes: dict[int, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The result as JSON-ready values."""
        return {
            "algorithm": self.algorithm,
            "params": self.hasher.params,
            "cpu_ms": round(self.cpu_s * 1000, 1),
            "wall_ms": round(self.wall_s * 1000, 1),
            "capacity_per_s": round(self.capacity_per_s, 2),
            "memory_per_hash_mib": round(self.memory_bytes / _MIB, 3),
            "note": self.note,
            "cpu_ms_by_lanes": {
                str(lanes): round(cpu * 1000, 1) for lanes, cpu in self.cpu_s_by_lanes.items()
            },
        }


@dataclass
class CalibrateResult:
    """Every algorithm's calibration, with the machine and the target."""

    target_s: float
    machine: dict[str, object]
    results: list[Calibrated]
    skipped: dict[str, str]
    elapsed_s: float


def memory_per_hash(hasher: Hasher) -> int:
    """Return the bytes one hash in flight needs, from its parameters (`Hasher.memory_per_hash`)."""
    return hasher.memory_per_hash()


def _measure(hasher: Hasher, repeats: int) -> tuple[float, float]:
    """Return (median CPU seconds, median wall seconds) of one ``hasher.hash``."""
    walls: list[float] = []

    def once() -> None:
        start = time.perf_counter()
        hasher.hash("calibration password")
        walls.append(time.perf_counter() - start)

    cpu = cpu_seconds(once, repeats=repeats)
    measured = sorted(walls[-repeats:])
    return cpu, measured[len(measured) // 2]


def _round_iterations(value: float) -> int:
    """Round an iteration count to two or three significant figures people can read."""
    step = next((step for floor, step in _ITERATION_STEPS if value >= floor), 10)
    return max(1, round(value / step) * step)


def _closest_power(value: float, low: int, high: int) -> int:
    """Return the exponent in ``[low, high]`` whose power of two is nearest ``value`` (log)."""
    if value <= 0:
        return low
    return min(max(round(math.log2(value)), low), high)


def _linear(
    make: Callable[[int], Hasher],
    probe: int,
    target_s: float,
    clamp: Callable[[float], int],
    repeats: int,
) -> tuple[Hasher, float, float]:
    """Search a parameter the cost is proportional to: probe, predict, correct once."""
    cpu, _ = _measure(make(probe), repeats)
    guess = clamp(probe * target_s / cpu)
    hasher = make(guess)
    cpu, wall = _measure(hasher, repeats)
    better = clamp(guess * target_s / cpu)
    if better != guess:
        hasher = make(better)
        cpu, wall = _measure(hasher, repeats)
    return hasher, cpu, wall


def pbkdf2_for(target_s: float, *, repeats: int = 3) -> tuple[PBKDF2Hasher, float, float]:
    """Return the PBKDF2-SHA256 hasher whose hash costs about ``target_s`` CPU seconds here."""

    def clamp(value: float) -> int:
        return min(_round_iterations(value), PBKDF2Hasher.max_iterations)

    probe = 20_000 if target_s >= 0.02 else 1_000  # noqa: PLR2004 - cheap first guesses
    hasher, cpu, wall = _linear(
        lambda n: PBKDF2Hasher(iterations=n), probe, target_s, clamp, repeats
    )
    if not isinstance(hasher, PBKDF2Hasher):  # pragma: no cover - make() builds one
        raise TypeError("expected a PBKDF2 hasher")
    return hasher, cpu, wall


def _argon2_for(
    target_s: float, memory_cost: int, parallelism: int, repeats: int
) -> tuple[Hasher, float, float, str | None]:
    top = max(1, min(Argon2Hasher.max_time_cost, Argon2Hasher.max_work // memory_cost))

    def make(t: int) -> Hasher:
        # One thread for the lanes, as on a pool worker: the cost the pool pays.
        return Argon2Hasher(
            time_cost=t, memory_cost=memory_cost, parallelism=parallelism, threads=1
        )

    # cost(t) = a + b*t: two probes give both (allocation and setup are the a).
    one, _ = _measure(make(1), repeats)
    two, _ = _measure(make(min(2, top)), repeats)
    slope = max(two - one, one / 4) if top > 1 else one
    base = max(one - slope, 0.0)
    guess = min(max(round((target_s - base) / slope), 1), top)
    hasher = make(guess)
    cpu, wall = _measure(hasher, repeats)
    better = min(max(round(guess * target_s / cpu), 1), top)
    if better != guess:
        guess = better
        hasher = make(guess)
        cpu, wall = _measure(hasher, repeats)
    note = None
    if guess == 1 and cpu > target_s * 1.5:
        note = f"one pass over {memory_cost} KiB already costs more than the target"
    elif guess == top and cpu < target_s / 1.5:
        note = f"time_cost {top} is loopsafe's bound at this memory_cost"
    return hasher, cpu, wall, note


def argon2_cost_by_lanes(hasher: Argon2Hasher, repeats: int) -> dict[int, float]:
    """CPU seconds of one hash at ``hasher``'s time and memory for 1, 2, 4, 8 and its own lanes.

    Computed as on a pool worker (one thread): the lanes change the hash, not
    the work, so the figures differ little; they are reported so that a site
    choosing its lanes sees it.
    """
    counts = sorted({1, 2, 4, 8, hasher.parallelism})
    costs: dict[int, float] = {}
    for lanes in counts:
        if hasher.memory_cost < 8 * lanes:
            continue
        if lanes == hasher.parallelism:
            probe = hasher
        else:
            probe = Argon2Hasher(
                time_cost=hasher.time_cost,
                memory_cost=hasher.memory_cost,
                parallelism=lanes,
                threads=1,
            )
        costs[lanes], _ = _measure(probe, repeats)
    return costs


def _exponential(
    make: Callable[[int], Hasher],
    *,
    probe: int,
    low: int,
    high: int,
    target_s: float,
    repeats: int,
) -> tuple[Hasher, float, float, str | None]:
    """Search a power-of-two parameter ``2**k``: the cost doubles with each step of k."""
    cpu, _ = _measure(make(probe), repeats)
    k = _closest_power(2**probe * target_s / cpu, low, high)
    hasher = make(k)
    cpu, wall = _measure(hasher, repeats)
    better = _closest_power(2**k * target_s / cpu, low, high)
    if better != k:
        hasher = make(better)
        cpu, wall = _measure(hasher, repeats)
        k = better
    note = None
    if k == high and cpu < target_s / 1.5:
        note = "the largest cost loopsafe's bounds allow"
    elif k == low and cpu > target_s * 1.5:
        note = "the smallest cost is already above the target"
    return hasher, cpu, wall, note


def _calibrate_one(
    algorithm: str, target_s: float, fixed: profiles.Profile, repeats: int
) -> tuple[Hasher, float, float, str | None]:
    if algorithm == "pbkdf2_sha256":
        hasher, cpu, wall = pbkdf2_for(target_s, repeats=repeats)
        note = None
        if hasher.iterations == PBKDF2Hasher.max_iterations:
            note = "the largest iteration count loopsafe's bounds allow"
        return hasher, cpu, wall, note
    if algorithm == "argon2":
        return _argon2_for(target_s, fixed.argon2_memory_cost, fixed.argon2_parallelism, repeats)
    if algorithm == "bcrypt_sha256":
        return _exponential(
            lambda rounds: BCryptSHA256Hasher(rounds=rounds),
            probe=6,
            low=BCryptSHA256Hasher.min_rounds,
            high=BCryptSHA256Hasher.max_rounds,
            target_s=target_s,
            repeats=repeats,
        )
    if algorithm == "scrypt":
        r, p = fixed.scrypt_block_size, fixed.scrypt_parallelism
        by_memory = ScryptHasher.max_memory_bytes // (128 * r)
        by_work = ScryptHasher.max_work // (r * p)
        high = int(math.log2(min(by_memory, by_work)))
        return _exponential(
            lambda k: ScryptHasher(work_factor=2**k, block_size=r, parallelism=p),
            probe=min(10, high),
            low=1,
            high=high,
            target_s=target_s,
            repeats=repeats,
        )
    raise ValueError(f"cannot calibrate {algorithm!r}")


def calibrate(
    target_s: float,
    *,
    algorithms: tuple[str, ...] = CALIBRATED_ALGORITHMS,
    fixed: profiles.Profile = profiles.DEFAULT,
    repeats: int = 3,
    on_algorithm: Callable[[str], None] | None = None,
) -> CalibrateResult:
    """Find every algorithm's parameter for ``target_s`` CPU seconds per hash on this machine.

    Args:
        target_s: Target CPU seconds of one hash.
        algorithms: Which algorithms (from `CALIBRATED_ALGORITHMS`).
        fixed: Where the parameters that do not move come from (Argon2's
            memory and lanes, scrypt's r and p).
        repeats: Measured hashes per setting (the median is used).
        on_algorithm: Called with each algorithm's name before it starts.

    Raises:
        ValueError: If ``target_s`` is not positive or an algorithm is unknown.
    """
    if not target_s > 0:
        raise ValueError("the target must be a positive number of seconds")
    unknown = set(algorithms) - set(CALIBRATED_ALGORITHMS)
    if unknown:
        raise ValueError(f"cannot calibrate: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    cores = usable_cpus()
    results: list[Calibrated] = []
    skipped: dict[str, str] = {}
    for algorithm in algorithms:
        if on_algorithm is not None:
            on_algorithm(algorithm)
        try:
            fixed.hasher(algorithm).check_available()
        except HasherNotAvailable as exc:
            skipped[algorithm] = str(exc)
            continue
        hasher, cpu, wall, note = _calibrate_one(algorithm, target_s, fixed, repeats)
        by_lanes = argon2_cost_by_lanes(hasher, repeats) if isinstance(hasher, Argon2Hasher) else {}
        results.append(
            Calibrated(
                algorithm=algorithm,
                hasher=hasher,
                cpu_s=cpu,
                wall_s=wall,
                capacity_per_s=cores / cpu,
                memory_bytes=memory_per_hash(hasher),
                note=note,
                cpu_s_by_lanes=by_lanes,
            )
        )
    return CalibrateResult(
        target_s=target_s,
        machine=machine_info(),
        results=results,
        skipped=skipped,
        elapsed_s=time.perf_counter() - started,
    )


def _number(name: str, value: int) -> str:
    """Write a parameter as Python source people can read: 2**15 for scrypt's N, 1_200_000."""
    if name == "work_factor":
        return f"2**{value.bit_length() - 1}"
    return f"{value:_}"


def _django_attributes(hasher: Hasher) -> list[str]:
    lines = [f"{name} = {_number(name, value)}" for name, value in hasher.params.items()]
    if isinstance(hasher, ScryptHasher):
        need = 128 * hasher.block_size * (hasher.work_factor + hasher.parallelism + 2)
        if need > _OPENSSL_SCRYPT_MAXMEM - _MIB:
            # Django passes maxmem (default 0: OpenSSL's 32 MiB) to hashlib.scrypt.
            lines.append(f"maxmem = {_number('maxmem', need + _MIB)}")
    return lines


def django_settings_code(result: CalibrateResult, module: str = "yourapp.hashers") -> str:
    """Return ``hashers.py`` subclasses and the ``PASSWORD_HASHERS`` setting that uses them."""
    ms = round(result.target_s * 1000)
    cores = result.machine.get("usable_cpus")
    imports = sorted(_DJANGO_CLASSES[c.algorithm] for c in result.results)
    out = [
        f"# {module.replace('.', '/')}.py - calibrated by `loopsafe calibrate --target-ms {ms}`",
        f"# on a machine with {cores} usable cores.",
        "from django.contrib.auth.hashers import (",
        *(f"    {name}," for name in imports),
        ")",
    ]
    names = []
    for item in result.results:
        base = _DJANGO_CLASSES[item.algorithm]
        name = f"Calibrated{base}"
        names.append(name)
        out += ["", "", f"class {name}({base}):"]
        out += [f"    {line}" for line in _django_attributes(item.hasher)]
    out += [
        "",
        "",
        "# settings.py - the first hasher makes new hashes; the others verify existing",
        "# ones, which are upgraded on the next successful login. Put one class per",
        "# algorithm only: Django picks a hasher by its algorithm name.",
        "PASSWORD_HASHERS = [",
        *(f'    "{module}.{name}",' for name in names),
        '    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",',
        "]",
    ]
    return "\n".join(out) + "\n"


def password_hash_code(result: CalibrateResult) -> str:
    """Return the `PasswordHash` that uses the calibrated hashers (Argon2 first, as recommended)."""
    ordered = sorted(result.results, key=lambda c: c.algorithm != "argon2")
    imports = sorted({_LOOPSAFE_CLASSES[c.algorithm] for c in ordered} | {"PasswordHash"})
    ms = round(result.target_s * 1000)
    out = [
        f"# calibrated by `loopsafe calibrate --target-ms {ms}`; the first hasher makes new hashes",
        f"from loopsafe import {', '.join(imports)}",
        "",
        "password_hash = PasswordHash(",
        "    [",
    ]
    for item in ordered:
        args = ", ".join(f"{k}={_number(k, v)}" for k, v in item.hasher.params.items())
        out.append(f"        {_LOOPSAFE_CLASSES[item.algorithm]}({args}),")
    out += ["    ]", ")"]
    return "\n".join(out) + "\n"


def worst_case(result: CalibrateResult) -> str:
    """Say what the current settings (LOOPSAFE_HOST_LIMIT, the usable CPUs) allow at worst."""
    host_limit = host_limit_from_env()
    if host_limit is None:
        bound = usable_cpus()
        where = "per worker process (LOOPSAFE_HOST_LIMIT unset: x the number of workers)"
    else:
        bound = host_limit
        where = "on the host (LOOPSAFE_HOST_LIMIT)"
    memory = ", ".join(
        f"{item.algorithm} {bound * item.memory_bytes / 2**20:.0f} MiB"
        for item in result.results
        if item.memory_bytes >= 2**20
    )
    return f"at worst: {bound} hashes at once {where}" + (
        f"; hashing memory then: {memory}" if memory else ""
    )
