"""Loop lag during 20 concurrent Django logins: stock Django vs loopsafe, real default hashers.

The mix, as in ``tests/django/test_login_mix.py`` but at Django's real costs
(its default ``PASSWORD_HASHERS``, PBKDF2 first): 5 right passwords, 5 wrong
ones, 5 unknown users, and 5 users whose stored hash has the previous Django
release's PBKDF2 iterations, so the login must upgrade and save it. All 20
``aauthenticate`` calls are issued at once on one asyncio loop while a
`loopsafe.LoopLagMonitor` ticks every 5 ms (the loop-lag measure of docs/measuring.md).

Variants, run in alternating order inside one process, ``--rounds`` times:

``stock``
    Django's own ``ModelBackend``; nothing patched.
``loopsafe``
    ``loopsafe.django.backends.ModelBackend``.
``patch``
    Django's own backend with ``LOOPSAFE = {"PATCH_AUTH": True}``.

``loopsafe-lane-threads``
    loopsafe's backend, with ``--first-hasher argon2`` only: Argon2 through a
    subclass of Django's hasher whose methods only call Django's, so loopsafe
    leaves it to argon2-cffi's one thread per lane (how loopsafe ran Django's
    Argon2 before it computed the stock class itself): the baseline for it.

The loopsafe pool has one worker per usable CPU and, by default, no wait-based
admission limit (``--max-queue-wait``), so every variant answers all 20.
``--first-hasher argon2`` puts Django's stock ``Argon2PasswordHasher`` first
(its defaults: t=2, 100 MiB, 8 lanes): right, wrong and unknown users hash
with it, and the 5 upgrades go from the previous release's PBKDF2 to Argon2.

Run::

    python benchmarks/django_login_mix.py [--rounds 3] [--variants stock,loopsafe,patch]
    python benchmarks/django_login_mix.py --first-hasher argon2 \
        --variants stock,loopsafe,loopsafe-lane-threads,patch

It prints one line per round and a summary of medians (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import aauthenticate
from django.contrib.auth.hashers import (
    Argon2PasswordHasher,
    PBKDF2PasswordHasher,
    get_hasher,
    make_password,
)
from django.core.management import call_command
from django.test import override_settings
from django.utils.version import get_complete_version, get_version

import loopsafe
from loopsafe import LagSnapshot, LoopLagMonitor
from loopsafe.django import conf

VARIANTS = ("stock", "loopsafe", "patch", "loopsafe-lane-threads")
DEFAULT_VARIANTS = ("stock", "loopsafe", "patch")
STOCK_ARGON2 = "django.contrib.auth.hashers.Argon2PasswordHasher"
LANE_THREADS_ARGON2 = "__main__.LaneThreadsArgon2PasswordHasher"


class LaneThreadsArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's Argon2 with methods of its own that call Django's: argon2-cffi computes it."""

    def encode(self, password: str, salt: str) -> str:
        """Django's encode (one thread per lane)."""
        return super().encode(password, salt)

    def verify(self, password: str, encoded: str) -> bool:
        """Django's verify (one thread per lane)."""
        return super().verify(password, encoded)


def _hashers(first: str) -> list[str]:
    """Django's default PASSWORD_HASHERS, with ``first`` moved to the front."""
    from django.conf import global_settings  # noqa: PLC0415 - only here

    defaults = list(global_settings.PASSWORD_HASHERS)
    if first == "argon2":
        defaults.remove(STOCK_ARGON2)
        defaults.insert(0, STOCK_ARGON2)
    return defaults


def setup_django(db_path: Path, first: str = "pbkdf2") -> None:
    """Configure Django in this process: default hashers, SQLite file, auth tables."""
    settings.configure(
        PASSWORD_HASHERS=_hashers(first),
        SECRET_KEY="loopsafe-benchmark-only-" + "x" * 30,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(db_path),
                "OPTIONS": {"timeout": 30},
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    apps.populate(settings.INSTALLED_APPS)
    call_command("migrate", verbosity=0)


def previous_iterations() -> int:
    """PBKDF2 iterations of the Django release before the installed one."""
    return 1_000_000 if get_complete_version() >= (6, 0) else 600_000


def seed(old_iterations: int) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """Create the users; return the 20 logins and the old hashes to restore before each round."""
    from django.contrib.auth.models import User  # noqa: PLC0415 - needs django.setup()

    hasher = PBKDF2PasswordHasher()
    logins, old = [], {}
    for i in range(5):
        User.objects.create(username=f"right{i}", password=make_password(f"right-{i}"))
        logins.append(("right", f"right{i}", f"right-{i}"))
        User.objects.create(username=f"wrong{i}", password=make_password(f"wrong-{i}"))
        logins.append(("wrong", f"wrong{i}", "not-the-password"))
        logins.append(("unknown", f"nobody{i}", f"unknown-{i}"))
        old[f"upgrade{i}"] = hasher.encode(f"upgrade-{i}", hasher.salt(), old_iterations)
        User.objects.create(username=f"upgrade{i}", password=old[f"upgrade{i}"])
        logins.append(("upgrade", f"upgrade{i}", f"upgrade-{i}"))
    return logins, old


def restore(old: dict[str, str]) -> None:
    """Put the outdated hashes back so every round upgrades 5 users."""
    from django.contrib.auth.models import User  # noqa: PLC0415 - needs django.setup()

    for username, encoded in old.items():
        User.objects.filter(username=username).update(password=encoded)


async def one_round(logins: list[tuple[str, str, str]]) -> tuple[LagSnapshot, float]:
    """Run the 20 logins at once under the lag monitor; check the answers."""
    started = time.perf_counter()
    async with LoopLagMonitor(0.005) as lag:
        users = await asyncio.gather(
            *(aauthenticate(username=name, password=pw) for _, name, pw in logins)
        )
    wall = time.perf_counter() - started
    for (kind, name, _), user in zip(logins, users, strict=True):
        ok = user is not None and user.get_username() == name
        if ok != (kind in {"right", "upgrade"}):
            raise SystemExit(f"wrong answer for {kind} login {name}")
    return lag.snapshot(), wall


def run_variant(
    variant: str, logins: list[tuple[str, str, str]], max_queue_wait: float | None
) -> tuple[LagSnapshot, float]:
    """Set up the variant's settings, run one round, and undo the settings."""
    backend = (
        "loopsafe.django.backends.ModelBackend"
        if variant.startswith("loopsafe")
        else "django.contrib.auth.backends.ModelBackend"
    )
    loopsafe_settings = {"MAX_QUEUE_WAIT": max_queue_wait, "PATCH_AUTH": variant == "patch"}
    hashers = list(settings.PASSWORD_HASHERS)
    if variant == "loopsafe-lane-threads":
        hashers = [LANE_THREADS_ARGON2 if h == STOCK_ARGON2 else h for h in hashers]
    with override_settings(
        AUTHENTICATION_BACKENDS=[backend], LOOPSAFE=loopsafe_settings, PASSWORD_HASHERS=hashers
    ):
        # override_settings sends setting_changed; without the app installed,
        # apply LOOPSAFE the way its receiver would.
        conf.apply(conf.get_settings(), reconcile_pool=True)
        try:
            return asyncio.run(one_round(logins))
        finally:
            conf.apply(conf.LoopsafeSettings(), reconcile_pool=True)


def _describe(hasher: object) -> str:
    if isinstance(hasher, Argon2PasswordHasher):
        return (
            f"argon2 t={hasher.time_cost} m={hasher.memory_cost} p={hasher.parallelism} "
            "(Django's stock class)"
        )
    return f"{getattr(hasher, 'algorithm', '?')} {getattr(hasher, 'iterations', '?')} iterations"


def main() -> None:
    """Parse the options, run the rounds, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument(
        "--first-hasher",
        choices=["pbkdf2", "argon2"],
        default="pbkdf2",
        help="the hasher new hashes use: Django's default (PBKDF2) or its stock Argon2",
    )
    parser.add_argument(
        "--max-queue-wait",
        type=float,
        default=None,
        help="loopsafe admission limit in seconds (default: none, so all 20 are answered)",
    )
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")

    with tempfile.TemporaryDirectory() as tmp:
        if "loopsafe-lane-threads" in variants and args.first_hasher != "argon2":
            parser.error("the loopsafe-lane-threads variant needs --first-hasher argon2")
        setup_django(Path(tmp) / "bench.sqlite3", args.first_hasher)
        old_iterations = previous_iterations()
        logins, old = seed(old_iterations)
        cpus = loopsafe.usable_cpus()
        print(
            f"Django {get_version()} · Python {platform.python_version()} · "
            f"{cpus} usable CPUs · {dt.datetime.now(dt.timezone.utc):%Y-%m-%d} · "
            f"default hasher {_describe(get_hasher())}; upgrades from PBKDF2 {old_iterations}"
        )
        print("20 concurrent aauthenticate: 5 right, 5 wrong, 5 unknown, 5 upgrade; lag in ms")
        results: dict[str, list[tuple[LagSnapshot, float]]] = {v: [] for v in variants}
        for round_no in range(args.rounds):
            order = variants[round_no % len(variants) :] + variants[: round_no % len(variants)]
            for variant in order:
                restore(old)
                snapshot, wall = run_variant(variant, logins, args.max_queue_wait)
                results[variant].append((snapshot, wall))
                ms = snapshot.as_ms()
                print(
                    f"round {round_no + 1} {variant:<22} p50 {ms['p50_ms']:8.1f}  "
                    f"p99 {ms['p99_ms']:8.1f}  max {ms['max_ms']:8.1f}  wall {wall * 1000:8.0f}"
                )
        print("\nmedians over rounds (ms)")
        print(f"{'variant':<22} {'p50':>8} {'p99':>8} {'max':>8} {'wall':>8}")
        medians = {}
        for variant in variants:
            snaps = results[variant]
            med = {
                key: statistics.median(getattr(s, key) * 1000 for s, _ in snaps)
                for key in ("p50", "p99", "max")
            }
            med["wall"] = statistics.median(w * 1000 for _, w in snaps)
            medians[variant] = med
            print(
                f"{variant:<22} {med['p50']:8.1f} {med['p99']:8.1f} {med['max']:8.1f} "
                f"{med['wall']:8.0f}"
            )
        if "stock" in medians and "loopsafe" in medians and medians["loopsafe"]["max"] > 0:
            ratio = medians["stock"]["max"] / medians["loopsafe"]["max"]
            print(f"\nmax loop lag, stock / loopsafe: {ratio:.0f}x")
        sys.stdout.flush()
    os._exit(0)  # the SQLite thread of asgiref may hold the file; nothing left to clean


if __name__ == "__main__":
    main()
