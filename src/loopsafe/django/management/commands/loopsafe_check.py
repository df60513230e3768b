"""``manage.py loopsafe_check``: the pool, the patch, the backends, and each hasher's cost here.

It also says which implementation computes PBKDF2 and scrypt in this process
(hashlib or cryptography, chosen by measurement or ``LOOPSAFE_KDF_BACKEND``),
and which of the configured hashers loopsafe computes itself (Django's stock
Argon2, PBKDF2 and scrypt classes); the costs are measured through that path.

Each configured hasher hashes a random password a few times on this machine
(one warm-up, then the median of ``--repeat`` runs), measured in CPU seconds
with ``time.process_time`` (which counts Argon2's lanes on every thread) and
turned into a capacity: usable CPUs / CPU seconds per hash.
"""

from __future__ import annotations

import platform
import secrets
import statistics
import time
from importlib import metadata
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import hashers
from django.core import checks
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string
from django.utils.version import get_version

from loopsafe._default import default_pool
from loopsafe._limits import container_limits
from loopsafe._settings import usable_cpus
from loopsafe.django import _argon2, _kdf, _patch, conf
from loopsafe.django._passwords import DJANGO_VERSION, _make
from loopsafe.django.checks import TAG, hasher_memory
from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import kdf_backends

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from loopsafe._statistics import PoolStatistics


__all__ = ["Command"]

_PARAMETERS = (
    "iterations",
    "rounds",
    "time_cost",
    "memory_cost",
    "parallelism",
    "work_factor",
    "block_size",
)


def _describe_backend(path: str) -> str:  # noqa: PLR0911 - one answer per kind of backend
    from django.contrib.auth.backends import ModelBackend as DjangoModelBackend

    from loopsafe.django.backends import ModelBackend

    try:
        backend = import_string(path)
    except ImportError as exc:
        return f"cannot import: {exc}"
    if not isinstance(backend, type):
        return "not a class"
    if issubclass(backend, ModelBackend):
        return "loopsafe: hashes on the pool"
    if not issubclass(backend, DjangoModelBackend):
        return "custom backend: not inspected"
    if _patch.patched():
        return "Django's, patched by PATCH_AUTH"
    if DJANGO_VERSION < (5, 0):
        return "Django 4.2: no aauthenticate"
    return "Django's: hashes on the event loop" + (
        " when rehashing" if DJANGO_VERSION >= (6, 0) else ""
    )


def _measure(hasher: Any, repeat: int) -> tuple[float, float]:
    """Return the median (CPU seconds, wall seconds) of one hash, after one warm-up."""
    password = secrets.token_urlsafe(12)
    _make(password, None, hasher)
    cpu, wall = [], []
    for _ in range(repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # loopsafe's path: Django's stock hashers computed as the pool computes them.
        _make(password, None, hasher)
        cpu.append(time.process_time() - cpu0)
        wall.append(time.perf_counter() - wall0)
    return statistics.median(cpu), statistics.median(wall)


class Command(BaseCommand):
    """Print loopsafe's view of this project and the measured cost of each hasher."""

    help = (
        "Show loopsafe's pool, PATCH_AUTH, authentication backends and password hashers, "
        "with each hasher's measured cost on this machine."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Add ``--repeat`` and ``--no-measure``."""
        parser.add_argument(
            "--repeat",
            type=int,
            default=3,
            help="timed hashes per hasher, after one warm-up (default 3; median reported)",
        )
        parser.add_argument(
            "--no-measure",
            action="store_true",
            help="list the hashers without hashing anything",
        )

    def handle(self, *args: Any, **options: Any) -> None:  # noqa: ARG002 - Django's signature
        """Print the report."""
        repeat = max(1, int(options["repeat"]))
        write = self.stdout.write
        cpus = usable_cpus()
        try:
            version = metadata.version("loopsafe")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
            version = "unknown"
        write(
            f"loopsafe {version} · Django {get_version()} · "
            f"Python {platform.python_version()} · {cpus} usable CPUs"
        )
        config = conf.get_settings()
        stats = default_pool().statistics()
        wait = "none" if config.max_queue_wait is None else f"{config.max_queue_wait:g}s"
        write(
            f"pool        max_workers={stats.max_workers} max_queue_wait={wait} "
            f"max_pending={config.max_pending} nice=+{config.nice}"
        )
        write(
            f"            threads={stats.threads} running={stats.running} queued={stats.queued} "
            f"admitted={stats.admitted} completed={stats.completed} rejected={stats.rejected}"
        )
        limits = container_limits()
        write(f"limits      {limits.describe()}")
        if config.max_workers is not None and config.max_workers != limits.cpus:
            write(f"            MAX_WORKERS={config.max_workers} is set: it wins over the limits")
        self._worst_case(stats)
        try:
            choices = kdf_backends()
        except (ValueError, HasherNotAvailable) as exc:  # LOOPSAFE_KDF_BACKEND is wrong
            write(self.style.WARNING(f"kdf         {exc}"))
        else:
            write(f"kdf         PBKDF2: {choices['pbkdf2'].describe()}")
            write(f"            scrypt: {choices['scrypt'].describe()}")
        patched = _patch.patched()
        if patched:
            write(f"PATCH_AUTH  on: {', '.join(patched)}")
        else:
            state = "on, but Django 4.2 has nothing to patch" if config.patch_auth else "off"
            write(f"PATCH_AUTH  {state}")
        write("backends")
        for path in settings.AUTHENTICATION_BACKENDS:
            write(f"  {path}  [{_describe_backend(path)}]")
        self._hashers(cpus, repeat, measure=not options["no_measure"])
        self._checks()

    def _worst_case(self, stats: PoolStatistics) -> None:
        """Print what the settings allow at worst: hashes at once and their memory."""
        write = self.stdout.write
        pool = default_pool()
        try:
            per_hash = max((hasher_memory(h) for h in hashers.get_hashers()), default=0)
        except ImportError:  # a missing hasher is reported with the hashers below
            per_hash = 0
        if stats.host_limit is None:
            write(
                f"host        no host budget (LOOPSAFE_HOST_LIMIT / LOOPSAFE['HOST_LIMIT'] unset): "
                f"each worker process runs up to {stats.max_workers} hashes"
            )
            at_once = f"{stats.max_workers} per worker process (x the number of workers)"
            bound = stats.max_workers
        else:
            write(
                f"host        host_limit={stats.host_limit} key={pool.host_key} "
                f"slots held now={stats.host_held}"
            )
            at_once = f"{stats.host_limit} on the host"
            bound = stats.host_limit
        memory = bound * per_hash
        if stats.max_memory is not None:
            memory = min(memory, max(stats.max_memory, per_hash))
        write(
            f"worst case  {at_once}; hashing memory {memory / 2**20:.0f} MiB"
            f"{' per worker process' if stats.host_limit is None else ''} "
            f"({per_hash / 2**20:.0f} MiB per hash, max_memory="
            f"{'none' if stats.max_memory is None else f'{stats.max_memory / 2**20:.0f} MiB'})"
        )

    def _hashers(self, cpus: int, repeat: int, *, measure: bool) -> None:
        write = self.stdout.write
        if measure:
            write(
                f"hashers     preferred first; CPU seconds per hash, median of {repeat} "
                "after one warm-up; capacity = usable CPUs / CPU seconds"
            )
        else:
            write("hashers     preferred first (not measured)")
        for path in settings.PASSWORD_HASHERS:
            try:
                hasher = import_string(path)()
            except ImportError as exc:
                write(self.style.WARNING(f"  {path}: cannot import: {exc}"))
                continue
            params = " ".join(
                f"{name}={getattr(hasher, name)}"
                for name in _PARAMETERS
                if isinstance(getattr(hasher, name, None), int)
            )
            memory = hasher_memory(hasher)
            if memory:
                params += f" ({memory / 1024 / 1024:.0f} MiB per hash)"
            if _argon2.is_stock(hasher) or _kdf.is_stock(hasher):
                params += " [computed by loopsafe]"
            line = f"  {hasher.algorithm:<14} {path.rsplit('.', 1)[-1]:<28} {params}"
            if measure:
                try:
                    cpu, wall = _measure(hasher, repeat)
                except ValueError as exc:  # Django: the algorithm's library is missing
                    line += self.style.WARNING(f"  unavailable: {exc}")
                else:
                    capacity = cpus / cpu if cpu > 0 else float("inf")
                    line += (
                        f"  cpu {cpu * 1000:.1f} ms, wall {wall * 1000:.1f} ms, "
                        f"capacity {capacity:.1f} hashes/s"
                    )
            write(line)
            lanes = getattr(hasher, "parallelism", None)
            # Django's stock Argon2 is computed by loopsafe with one thread per
            # worker (loopsafe.django._argon2); a hasher with its own methods is not.
            if (
                hasher.algorithm == "argon2"
                and not _argon2.is_stock(hasher)
                and isinstance(lanes, int)
                and lanes > cpus
            ):
                write(
                    f"      note: {lanes} Argon2 lanes on {cpus} usable CPUs, computed by this "
                    "hasher's own methods with one thread per lane. The pool already runs one "
                    "hash per CPU, so lanes beyond the CPUs add threads that delay the event "
                    "loop: keep Django's Argon2PasswordHasher methods (loopsafe then computes "
                    f"the lanes with one thread), or use parallelism={cpus}."
                )

    def _checks(self) -> None:
        messages = checks.run_checks(tags=[TAG], include_deployment_checks=False)
        messages = [m for m in messages if not m.is_silenced()]
        if not messages:
            write_line = f"checks      no issues (manage.py check --tag {TAG})"
            self.stdout.write(write_line)
            return
        self.stdout.write(f"checks      {len(messages)} issue(s) (manage.py check --tag {TAG}):")
        for message in messages:
            self.stdout.write(self.style.WARNING(f"  {message.id}: {message.msg}"))
            if message.hint:
                self.stdout.write(f"      hint: {message.hint}")
