r"""CPU per hash at Django's defaults: loopsafe's KDF backend vs hashlib, and vs Django's own.

Pairs, each measured in the same run, interleaved (the order alternates per
round), one warm-up, then the median of ``--repeat`` ``time.process_time()``
readings around single calls (process_time counts every thread, so the
pool worker's CPU in ``acheck_password`` is included):

* PBKDF2-SHA256 and PBKDF2-SHA1 at Django 6.1's 1,500,000 iterations, and
  scrypt at N=2**14, r=8, p=5: loopsafe's hasher ``verify`` (on the backend
  `loopsafe.hashers.kdf_backends` chose) vs ``hashlib`` called directly (what
  Django's hashers call);
* Django's stock ``PBKDF2PasswordHasher`` hash at the installed Django's
  default iterations (6.1: 1,500,000; 5.2: 1,000,000), verified through
  ``loopsafe.django.acheck_password`` (on loopsafe's pool) vs Django's own
  ``check_password``.

Each pair reports both medians, the ratio, and each side's CPU share
(CPU seconds / wall seconds of the single-threaded call: near 1.0 when the
call had a core to itself). Run it under the benchmark lock on a shared
machine:

    flock /tmp/loopsafe-bench.lock python benchmarks/kdf_cpu.py \\
        --json benchmarks/results/kdf-cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING

import django
from django.conf import settings

from loopsafe import usable_cpus
from loopsafe.cli._measure import machine_info
from loopsafe.hashers import PBKDF2Hasher, PBKDF2SHA1Hasher, ScryptHasher, kdf_backends

if TYPE_CHECKING:
    from collections.abc import Callable

PASSWORD = "kdf-cpu-benchmark"
SALT = "Zm9vYmFyYmF6cXV4Zm9v"
TARGETS = {
    "pbkdf2_sha256": 0.65,
    "pbkdf2_sha1": 0.65,
    "scrypt": 0.90,
    "django_pbkdf2": 0.70,
}


def _django() -> None:
    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        DATABASES={},
        USE_TZ=True,
        LOOPSAFE={"MAX_QUEUE_WAIT": None},
    )
    django.setup()


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def _pairs() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Map each pair's name to (loopsafe's call, the baseline's call)."""
    from django.contrib.auth.hashers import (  # noqa: PLC0415 - after settings.configure
        PBKDF2PasswordHasher,
        check_password,
    )

    from loopsafe.django import acheck_password  # noqa: PLC0415 - ditto

    secret, salt = PASSWORD.encode(), SALT.encode()
    sha256 = PBKDF2Hasher(iterations=1_500_000)
    sha1 = PBKDF2SHA1Hasher(iterations=1_500_000)
    scrypt = ScryptHasher(work_factor=2**14, block_size=8, parallelism=5)
    stored = {h.algorithm: h.encode(PASSWORD, SALT) for h in (sha256, sha1, scrypt)}
    django_stored = PBKDF2PasswordHasher().encode(PASSWORD, SALT)
    loop = asyncio.new_event_loop()

    def loopsafe_django() -> object:
        ok = loop.run_until_complete(acheck_password(PASSWORD, django_stored))
        if not ok:  # pragma: no cover - a broken run must not print figures
            raise SystemExit("acheck_password answered False")
        return ok

    scrypt_mem = 128 * 8 * (2**14 + 5) + 2**21
    return {
        "pbkdf2_sha256": (
            lambda: sha256.verify(PASSWORD, stored["pbkdf2_sha256"]),
            lambda: hashlib.pbkdf2_hmac("sha256", secret, salt, 1_500_000),
        ),
        "pbkdf2_sha1": (
            lambda: sha1.verify(PASSWORD, stored["pbkdf2_sha1"]),
            lambda: hashlib.pbkdf2_hmac("sha1", secret, salt, 1_500_000),
        ),
        "scrypt": (
            lambda: scrypt.verify(PASSWORD, stored["scrypt"]),
            lambda: hashlib.scrypt(
                secret, salt=salt, n=2**14, r=8, p=5, maxmem=scrypt_mem, dklen=64
            ),
        ),
        "django_pbkdf2": (loopsafe_django, lambda: check_password(PASSWORD, django_stored)),
    }


def run(repeat: int) -> dict[str, object]:
    """Measure every pair ``repeat`` times, interleaved, after one warm-up each."""
    pairs = _pairs()
    for ours, theirs in pairs.values():
        ours()
        theirs()
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {"loopsafe": [], "baseline": []} for name in pairs
    }
    load_before = os.getloadavg()
    started = time.perf_counter()
    for round_ in range(repeat):
        for name, (ours, theirs) in pairs.items():
            order = [("loopsafe", ours), ("baseline", theirs)]
            if round_ % 2:
                order.reverse()
            for side, fn in order:
                samples[name][side].append(_timed(fn))
    rows = []
    for name, sides in samples.items():
        cpu = {side: statistics.median(c for c, _ in runs) for side, runs in sides.items()}
        share = {side: statistics.median(c / w for c, w in runs) for side, runs in sides.items()}
        ratio = cpu["loopsafe"] / cpu["baseline"]
        rows.append(
            {
                "hash": name,
                "loopsafe_cpu_s": round(cpu["loopsafe"], 4),
                "baseline_cpu_s": round(cpu["baseline"], 4),
                "ratio": round(ratio, 3),
                "target": TARGETS[name],
                "met": ratio <= TARGETS[name],
                "cpu_share": {side: round(value, 2) for side, value in share.items()},
            }
        )
    return {
        "command": "python benchmarks/kdf_cpu.py " + " ".join(sys.argv[1:]),
        "repeat": repeat,
        "usable_cpus": usable_cpus(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "elapsed_s": round(time.perf_counter() - started, 1),
        "kdf_backends": {k: v.describe() for k, v in kdf_backends().items()},
        "django_default_iterations": _django_iterations(),
        "machine": machine_info(),
        "results": rows,
    }


def _django_iterations() -> int:
    from django.contrib.auth.hashers import PBKDF2PasswordHasher  # noqa: PLC0415 - after setup

    return int(PBKDF2PasswordHasher.iterations)


BASELINES = {
    "pbkdf2_sha256": "hashlib.pbkdf2_hmac, 1,500,000",
    "pbkdf2_sha1": "hashlib.pbkdf2_hmac, 1,500,000",
    "scrypt": "hashlib.scrypt N=2^14 r=8 p=5",
    "django_pbkdf2": "Django check_password",
}


def report(result: dict[str, object]) -> str:
    """The result as a plain-text table."""
    machine = result["machine"]
    assert isinstance(machine, dict)  # noqa: S101 - our own structure
    lines = [
        f"{result['command']}",
        (
            f"date {machine['date']}, {result['usable_cpus']} usable cores, "
            f"Python {machine['python']}, Django {machine['django']} "
            f"(default PBKDF2 iterations {result['django_default_iterations']}), "
            f"cryptography {machine['cryptography']}, system {machine['openssl']}"
        ),
        (
            f"load average before {result['loadavg_before']}, after {result['loadavg_after']}; "
            f"medians of {result['repeat']}, interleaved; CPU seconds per hash (process_time)"
        ),
        f"KDF backends: {result['kdf_backends']}",
        "",
        (
            f"{'hash':<15} {'loopsafe s':>10} {'baseline s':>10} {'ratio':>6} {'target':>7} "
            f"{'met':>4}  {'CPU share (ours/baseline)':>26}  baseline"
        ),
    ]
    rows = result["results"]
    assert isinstance(rows, list)  # noqa: S101 - our own structure
    for row in rows:
        share = row["cpu_share"]
        lines.append(
            f"{row['hash']:<15} {row['loopsafe_cpu_s']:>10.4f} {row['baseline_cpu_s']:>10.4f} "
            f"{row['ratio']:>6.3f} {'<=' + str(row['target']):>7} "
            f"{'yes' if row['met'] else 'NO':>4}  "
            f"{share['loopsafe']:>12.2f} / {share['baseline']:<11.2f}  {BASELINES[row['hash']]}"
        )
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments, run, print, and write the JSON if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (median reported)")
    parser.add_argument("--json", help="write the result here as JSON")
    args = parser.parse_args()
    _django()
    result = run(max(1, args.repeat))
    text = report(result)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:  # noqa: PTH123 - a plain file
            json.dump(result, out, indent=2)
            out.write("\n")
        with open(args.json.removesuffix(".json") + ".txt", "w", encoding="utf-8") as out:  # noqa: PTH123
            out.write(text + "\n")


if __name__ == "__main__":
    main()
