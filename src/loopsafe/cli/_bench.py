"""``loopsafe bench``: one burst of concurrent logins per hasher, run three ways.

This reproduces the table of Django ticket #36439 and adds what the ticket
could not see: event-loop lag and the machine's limit. For each hasher, N
users' passwords are verified at once (``asyncio.gather``) with the *same*
hasher code; only where the hash runs differs between the variants:

``blocking``
    ``verify_password`` called on the event loop, as Django 4.2 and 5.2's
    ``acheck_password`` do.
``sync_to_async``
    asgiref's ``sync_to_async(verify_password, thread_sensitive=False)``, i.e.
    the loop's default executor, as Django 6.x does.
``loopsafe``
    `PasswordHash.averify` on a `HashPool` with one worker per usable core.
``django``
    The installed Django's own ``acheck_password`` with its stock hasher for
    the algorithm (`loopsafe.cli._per_core.stock_django`): Django's code,
    hashlib's KDFs, wherever that Django version hashes (5.x on the loop,
    6.x in asgiref's executor). The only variant not on loopsafe's hasher code.

Before the bursts, each hasher's logins per core-second are measured in every
library that computes it, with the floor (`loopsafe.cli._per_core`).

With ``rehash`` every stored hash has a lower cost than the hasher's (the
users were hashed by an older Django), so every login also makes a new hash.
Django's async setter makes it on the loop (``set_password`` inside
``acheck_password``'s setter), so the ``blocking`` and ``sync_to_async``
variants do that; ``loopsafe`` verifies and rehashes in one
`PasswordHash.averify_and_update` call on the pool.

Each cell runs in a fresh event loop (so ``sync_to_async`` gets a fresh
default executor), under a `LoopLagMonitor` started just before the first call
and stopped after the last answer, and a `PeakRSS` sampler. Variant order
rotates between hashers and repetitions, so no variant always runs first on a
cold machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from loopsafe import profiles
from loopsafe._api import PasswordHash
from loopsafe._lag import LagSnapshot, LoopLagMonitor
from loopsafe._pool import HashPool
from loopsafe._settings import DEFAULT_NICE, usable_cpus
from loopsafe.cli._accounts import make_accounts, rotate, settle
from loopsafe.cli._measure import (
    PeakRSS,
    bench_extra,
    cpu_seconds,
    cpu_seconds_all_busy,
    lower_cost,
    machine_info,
)
from loopsafe.cli._per_core import PerCoreRow, django_login, measure_per_core, stock_django
from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import verify_password

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from loopsafe.hashers import Hasher

__all__ = [
    "ALGORITHMS",
    "VARIANTS",
    "BenchCell",
    "BenchConfig",
    "BenchObserver",
    "BenchResult",
    "BenchRow",
    "HasherCost",
    "default_variants",
    "run_bench",
    "settle",
]

#: The five hashers of the ticket's table, in Django's default order.
ALGORITHMS: tuple[str, ...] = ("pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "scrypt")
#: Where the hash runs: on the loop, in the default executor, on loopsafe's pool;
#: and stock Django's own ``acheck_password`` (its hashers, its threading).
VARIANTS: tuple[str, ...] = ("blocking", "sync_to_async", "loopsafe", "django")


def default_variants() -> tuple[str, ...]:
    """Every variant; ``django`` only where Django is installed."""
    has_django = importlib.util.find_spec("django") is not None
    return tuple(v for v in VARIANTS if v != "django" or has_django)


@dataclass(frozen=True)
class BenchConfig:
    """What ``loopsafe bench`` runs.

    Attributes:
        profile: The hashers' parameters (Django's defaults of one version).
        users: Concurrent logins per cell.
        rehash: Store every hash at a lower cost so each login also rehashes.
        repeat: Repetitions of every cell (figures are medians over them).
        algorithms: Which hashers, by Django's algorithm name.
        variants: Which variants.
        distinct_hashes: Stored hashes made per hasher; users share them in
            turn (verifying costs the same whatever the salt, and making 100
            real hashes per hasher would take longer than the benchmark).
        max_workers: loopsafe's pool size (default: usable cores).
        nice: loopsafe's worker priority drop (`HashPool`'s ``nice``).
        per_core: Measure logins per core-second in every library first.
    """

    profile: profiles.Profile = profiles.DEFAULT
    users: int = 100
    rehash: bool = False
    repeat: int = 1
    algorithms: tuple[str, ...] = ALGORITHMS
    variants: tuple[str, ...] = VARIANTS
    distinct_hashes: int = 4
    max_workers: int | None = None
    nice: int = DEFAULT_NICE
    per_core: bool = True

    def __post_init__(self) -> None:
        """Check the bounds and names."""
        if self.users < 1 or self.repeat < 1 or self.distinct_hashes < 1:
            raise ValueError("users, repeat and distinct_hashes must be at least 1")
        unknown = set(self.algorithms) - set(ALGORITHMS) or set(self.variants) - set(VARIANTS)
        if unknown:
            raise ValueError(f"unknown algorithm or variant: {', '.join(sorted(unknown))}")

    def as_dict(self) -> dict[str, object]:
        """The configuration as JSON-ready values."""
        return {
            "profile": self.profile.name,
            "users": self.users,
            "rehash": self.rehash,
            "repeat": self.repeat,
            "algorithms": list(self.algorithms),
            "variants": list(self.variants),
            "distinct_hashes": self.distinct_hashes,
            "max_workers": self.max_workers or usable_cpus(),
            "nice": self.nice,
            "per_core": self.per_core,
        }


#: Below this single-thread cost the all-cores-busy measurement would time thread starts.
_CEILING_MIN_S: Final = 0.02


@dataclass(frozen=True)
class HasherCost:
    """What one login costs with a hasher, and the machine's limit that follows.

    Attributes:
        algorithm: Django's algorithm name.
        params: The hasher's parameters (what new hashes get).
        stored_params: The stored hashes' parameters (lower with ``rehash``).
        cpu_s_per_login: Median CPU seconds of one single-threaded login
            (verify, plus the new hash with ``rehash``).
        capacity_per_s: Usable cores / ``cpu_s_per_login``: logins per second
            this machine could do at best.
        cpu_s_per_login_all_busy: CPU seconds of one login while every usable
            core runs one (see `cpu_seconds_all_busy`); None for logins under
            20 ms, where starting the threads costs more than the login.
        ceiling: ``cpu_s_per_login / cpu_s_per_login_all_busy``: the best
            ratio any variant can reach here when every core is busy (1.0 on
            a machine whose cores do not slow each other down), or None.
    """

    algorithm: str
    params: dict[str, int]
    stored_params: dict[str, int]
    cpu_s_per_login: float
    capacity_per_s: float
    cpu_s_per_login_all_busy: float | None = None
    ceiling: float | None = None


@dataclass(frozen=True)
class BenchCell:
    """One variant's burst with one hasher, in one repetition.

    Attributes:
        algorithm: Django's algorithm name.
        variant: ``blocking``, ``sync_to_async``, ``loopsafe`` or ``django``.
        repetition: 0-based repetition.
        position: 0-based place of this variant in the repetition's order.
        users: Logins in the burst.
        correct: Logins that verified True (should equal ``users``).
        rehashed: Logins that made a new hash.
        wall_s: First call issued to last answer.
        throughput_per_s: ``users / wall_s``.
        ratio: ``throughput_per_s`` / the hasher's capacity.
        lag: Loop lag over the burst.
        peak_rss_delta_mib: Peak RSS during the burst minus RSS before it.
        cpu_share: CPU seconds this process used during the burst / (wall x
            usable cores). Near 1.0 when the hashing had the machine to
            itself; well below it when the variant left cores idle, or when
            other processes took them (a shared machine).
        lag_samples: ``(seconds since start, lag)`` of every tick, for plots.
    """

    algorithm: str
    variant: str
    repetition: int
    position: int
    users: int
    correct: int
    rehashed: int
    wall_s: float
    throughput_per_s: float
    ratio: float
    lag: LagSnapshot
    peak_rss_delta_mib: float
    cpu_share: float = 0.0
    lag_samples: tuple[tuple[float, float], ...] = field(repr=False, default=())

    def as_dict(self) -> dict[str, object]:
        """The cell as JSON-ready values (without the lag samples)."""
        return {
            "algorithm": self.algorithm,
            "variant": self.variant,
            "repetition": self.repetition,
            "position": self.position,
            "users": self.users,
            "correct": self.correct,
            "rehashed": self.rehashed,
            "wall_s": round(self.wall_s, 4),
            "throughput_per_s": round(self.throughput_per_s, 3),
            "ratio": round(self.ratio, 3),
            "lag_ms": _lag_ms(self.lag),
            "peak_rss_delta_mib": self.peak_rss_delta_mib,
            "cpu_share": round(self.cpu_share, 3),
        }


def _lag_ms(lag: LagSnapshot) -> dict[str, float | int]:
    return {"samples": lag.samples, **{k.removesuffix("_ms"): v for k, v in lag.as_ms().items()}}


@dataclass
class BenchResult:
    """Everything one ``loopsafe bench`` run measured."""

    config: BenchConfig
    machine: dict[str, object]
    costs: list[HasherCost] = field(default_factory=list)
    cells: list[BenchCell] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    per_core: list[PerCoreRow] = field(default_factory=list)

    def cost(self, algorithm: str) -> HasherCost:
        """Return the measured cost of ``algorithm``.

        Raises:
            KeyError: If it was not measured (skipped or not asked for).
        """
        for cost in self.costs:
            if cost.algorithm == algorithm:
                return cost
        raise KeyError(algorithm)

    def summary(self) -> list[BenchRow]:
        """Medians over repetitions, one row per (algorithm, variant), in run order."""
        rows: list[BenchRow] = []
        for cost in self.costs:
            for variant in self.config.variants:
                cells = [
                    c for c in self.cells if c.algorithm == cost.algorithm and c.variant == variant
                ]
                if cells:
                    rows.append(BenchRow.of(cost, variant, cells))
        return rows


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass(frozen=True)
class BenchRow:
    """One (algorithm, variant) of a run: medians over its repetitions.

    Attributes:
        algorithm: Django's algorithm name.
        variant: ``blocking``, ``sync_to_async``, ``loopsafe`` or ``django``.
        runs: Repetitions behind the medians.
        users: Logins per burst.
        correct: Fewest logins that verified in any repetition.
        rehashed: Fewest logins that made a new hash in any repetition.
        wall_s: Median wall time of the burst.
        throughput_per_s: Median logins per second.
        capacity_per_s: The machine's limit for this hasher.
        ratio: Median throughput / limit.
        lag_p50_s: Median of the repetitions' lag p50.
        lag_p99_s: Median of the repetitions' lag p99.
        lag_max_s: Median of the repetitions' lag max.
        lag_worst_s: Largest lag of any repetition.
        peak_rss_delta_mib: Median peak RSS over the RSS before the burst.
        cpu_share: Median share of the machine's CPU the process used.
    """

    algorithm: str
    variant: str
    runs: int
    users: int
    correct: int
    rehashed: int
    wall_s: float
    throughput_per_s: float
    capacity_per_s: float
    ratio: float
    lag_p50_s: float
    lag_p99_s: float
    lag_max_s: float
    lag_worst_s: float
    peak_rss_delta_mib: float
    cpu_share: float

    @classmethod
    def of(cls, cost: HasherCost, variant: str, cells: Sequence[BenchCell]) -> BenchRow:
        """Summarise the repetitions of one cell."""
        return cls(
            algorithm=cost.algorithm,
            variant=variant,
            runs=len(cells),
            users=cells[0].users,
            correct=min(c.correct for c in cells),
            rehashed=min(c.rehashed for c in cells),
            wall_s=_median([c.wall_s for c in cells]),
            throughput_per_s=_median([c.throughput_per_s for c in cells]),
            capacity_per_s=cost.capacity_per_s,
            ratio=_median([c.ratio for c in cells]),
            lag_p50_s=_median([c.lag.p50 for c in cells]),
            lag_p99_s=_median([c.lag.p99 for c in cells]),
            lag_max_s=_median([c.lag.max for c in cells]),
            lag_worst_s=max(c.lag.max for c in cells),
            peak_rss_delta_mib=_median([c.peak_rss_delta_mib for c in cells]),
            cpu_share=_median([c.cpu_share for c in cells]),
        )

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready values (lag in milliseconds)."""
        return {
            "algorithm": self.algorithm,
            "variant": self.variant,
            "runs": self.runs,
            "users": self.users,
            "correct": self.correct,
            "rehashed": self.rehashed,
            "wall_s": round(self.wall_s, 4),
            "throughput_per_s": round(self.throughput_per_s, 3),
            "capacity_per_s": round(self.capacity_per_s, 3),
            "ratio": round(self.ratio, 3),
            "lag_ms": {
                "p50": round(self.lag_p50_s * 1000, 2),
                "p99": round(self.lag_p99_s * 1000, 2),
                "max": round(self.lag_max_s * 1000, 2),
                "worst": round(self.lag_worst_s * 1000, 2),
            },
            "peak_rss_delta_mib": round(self.peak_rss_delta_mib, 1),
            "cpu_share": round(self.cpu_share, 3),
        }


class BenchObserver(Protocol):
    """Told what the benchmark is doing, between measurements (never during one)."""

    def phase(self, text: str) -> None:
        """A preparation step starts (making stored hashes, measuring the cost)."""

    def cell_started(self, label: str, index: int, total: int) -> None:
        """Cell ``index`` (0-based) of ``total`` starts."""

    def cell_finished(self, cell: BenchCell) -> None:
        """A cell ended."""


class _Silent:
    def phase(self, text: str) -> None:
        pass

    def cell_started(self, label: str, index: int, total: int) -> None:
        pass

    def cell_finished(self, cell: BenchCell) -> None:
        pass


def _login_function(
    variant: str, facade: PasswordHash, pool: HashPool | None, *, rehash: bool
) -> Callable[[str, str], Awaitable[tuple[bool, bool]]]:
    """Return ``login(password, encoded) -> (ok, rehashed)`` for one variant."""
    hashers = facade.hashers
    preferred = facade.preferred
    if variant == "blocking":

        async def blocking(password: str, encoded: str) -> tuple[bool, bool]:
            # Django 5.2's acheck_password: verify_password on the loop, then the
            # async setter's set_password (make_password) on the loop too.
            ok, must_update = verify_password(hashers, password, encoded)
            if ok and must_update:
                preferred.hash(password)
            return ok, ok and must_update

        return blocking
    if variant == "sync_to_async":
        with bench_extra("the sync_to_async variant"):
            from asgiref.sync import sync_to_async

        off_loop = sync_to_async(verify_password, thread_sensitive=False)

        async def default_executor(password: str, encoded: str) -> tuple[bool, bool]:
            # Django 6.x's acheck_password: the verify in the default executor,
            # the async setter's make_password still on the loop.
            ok, must_update = await off_loop(hashers, password, encoded)
            if ok and must_update:
                preferred.hash(password)
            return ok, ok and must_update

        return default_executor
    if pool is None:  # pragma: no cover - the caller always gives one
        raise ValueError("the loopsafe variant needs a pool")
    on_pool = PasswordHash(hashers, pool=pool)

    async def loopsafe_rehash(password: str, encoded: str) -> tuple[bool, bool]:
        # Verify and make the upgraded hash in one call on the pool.
        ok, new_hash = await on_pool.averify_and_update(password, encoded)
        return ok, new_hash is not None

    async def loopsafe_verify(password: str, encoded: str) -> tuple[bool, bool]:
        # What acheck_password without a setter does: verify only.
        return await on_pool.averify(password, encoded), False

    return loopsafe_rehash if rehash else loopsafe_verify


async def _burst(
    variant: str,
    facade: PasswordHash,
    accounts: list[tuple[str, str]],
    max_workers: int,
    *,
    rehash: bool,
    nice: int = DEFAULT_NICE,
) -> tuple[list[tuple[bool, bool]], float, float, LoopLagMonitor]:
    pool = None
    if variant == "loopsafe":
        # A burst, not an overload test: every call must be answered, as in the
        # other variants, so admission is off (no wait budget, room for all).
        pool = HashPool(
            max_workers,
            max_queue_wait=None,
            max_pending=len(accounts),
            nice=nice,
            name="loopsafe-bench",
        )
    stock: contextlib.AbstractContextManager[object] = (
        stock_django(facade.preferred.algorithm)
        if variant == "django"
        else contextlib.nullcontext()
    )
    try:
        with stock:
            login = (
                django_login(rehash=rehash)
                if variant == "django"
                else _login_function(variant, facade, pool, rehash=rehash)
            )
            async with LoopLagMonitor() as lag:
                start, cpu_start = time.perf_counter(), time.process_time()
                outcomes = await asyncio.gather(*(login(pw, enc) for pw, enc in accounts))
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                await settle(lag)
    finally:
        if pool is not None:
            await pool.aclose()
    return list(outcomes), wall, cpu, lag


def run_cell(
    variant: str,
    facade: PasswordHash,
    accounts: list[tuple[str, str]],
    *,
    cost: HasherCost,
    rehash: bool = False,
    repetition: int = 0,
    position: int = 0,
    max_workers: int | None = None,
    nice: int = DEFAULT_NICE,
) -> BenchCell:
    """Run one burst in a fresh event loop and measure it."""
    workers = max_workers or usable_cpus()
    with PeakRSS() as rss:
        outcomes, wall, cpu, lag = asyncio.run(
            _burst(variant, facade, accounts, workers, rehash=rehash, nice=nice)
        )
    throughput = len(accounts) / wall if wall > 0 else float("inf")
    return BenchCell(
        algorithm=cost.algorithm,
        variant=variant,
        repetition=repetition,
        position=position,
        users=len(accounts),
        correct=sum(ok for ok, _ in outcomes),
        rehashed=sum(new for _, new in outcomes),
        wall_s=wall,
        throughput_per_s=throughput,
        ratio=throughput / cost.capacity_per_s,
        lag=lag.snapshot(),
        peak_rss_delta_mib=rss.delta_mib,
        cpu_share=cpu / (wall * usable_cpus()) if wall > 0 else 0.0,
        lag_samples=tuple(lag.samples()),
    )


def measure_cost(
    facade: PasswordHash, stored: Hasher, account: tuple[str, str], *, rehash: bool
) -> HasherCost:
    """Measure one single-threaded login's CPU seconds, and the capacity that follows."""
    password, encoded = account

    def login() -> object:
        if rehash:
            return facade.verify_and_update(password, encoded)
        return verify_password(facade.hashers, password, encoded)

    cpu = cpu_seconds(login)
    busy = cpu_seconds_all_busy(login, usable_cpus()) if cpu >= _CEILING_MIN_S else None
    return HasherCost(
        algorithm=facade.preferred.algorithm,
        params=facade.preferred.params,
        stored_params=stored.params,
        cpu_s_per_login=cpu,
        capacity_per_s=usable_cpus() / cpu,
        cpu_s_per_login_all_busy=busy,
        ceiling=None if busy is None else min(1.0, cpu / busy),
    )


def run_bench(config: BenchConfig, observer: BenchObserver | None = None) -> BenchResult:
    """Run every (hasher, variant) cell of ``config`` and return the measurements."""
    watch = observer or _Silent()
    result = BenchResult(config=config, machine=machine_info())
    started = time.perf_counter()
    cores = usable_cpus()
    total = len(config.algorithms) * len(config.variants) * config.repeat
    index = 0
    for number, algorithm in enumerate(config.algorithms):
        hasher = config.profile.hasher(algorithm)
        try:
            hasher.check_available()
        except HasherNotAvailable as exc:
            result.skipped[algorithm] = str(exc)
            index += len(config.variants) * config.repeat
            continue
        stored = lower_cost(hasher) if config.rehash else hasher
        facade = PasswordHash([hasher])
        watch.phase(
            f"{algorithm}: making {min(config.distinct_hashes, config.users)} stored hashes"
        )
        accounts = make_accounts(stored, config.users, config.distinct_hashes, cores)
        watch.phase(f"{algorithm}: measuring the CPU cost of one login")
        cost = measure_cost(facade, stored, accounts[0], rehash=config.rehash)
        result.costs.append(cost)
        if config.per_core:
            watch.phase(f"{algorithm}: logins per core-second in each library, and the floor")
            result.per_core.append(measure_per_core(facade, accounts[0][1], accounts[0][0]))
        for repetition in range(config.repeat):
            for position, variant in enumerate(rotate(config.variants, number + repetition)):
                label = f"{algorithm} / {variant}"
                if config.repeat > 1:
                    label += f" (run {repetition + 1}/{config.repeat})"
                watch.cell_started(label, index, total)
                cell = run_cell(
                    variant,
                    facade,
                    accounts,
                    cost=cost,
                    rehash=config.rehash,
                    repetition=repetition,
                    position=position,
                    max_workers=config.max_workers,
                    nice=config.nice,
                )
                result.cells.append(cell)
                watch.cell_finished(cell)
                index += 1
    result.elapsed_s = time.perf_counter() - started
    return result
