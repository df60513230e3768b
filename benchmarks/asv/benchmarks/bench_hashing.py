"""asv benchmarks: password checks gathered on one event loop, loop lag, and storm goodput.

``AcheckPassword`` mirrors django-asv's ``hash_acheck_password`` benchmark
(django-asv PR 94, written for Django ticket #36439): three passwords checked
at once with ``asyncio.gather``, per hasher, at Django's default parameters.
It runs the same check three ways, through loopsafe's public API only (so the
suite runs against any commit):

* ``blocking``: `PasswordHash.verify` called on the loop (Django 4.2/5.2),
* ``sync_to_async``: the same call through asgiref's ``sync_to_async(...,
  thread_sensitive=False)`` (Django 6.x),
* ``loopsafe``: `PasswordHash.averify` on a `HashPool`.

The ``track_`` benchmarks chart what a time cannot show: loop lag (p99 and
max, in ms) during a 20-login burst, throughput as a share of the machine's
limit, and goodput and wasted hashes of a 3x-capacity storm with a 2 s client
timeout. They read the JSON of ``loopsafe bench`` and ``loopsafe storm``,
whose keys are stable (docs/benchmarks.md).

    cd benchmarks/asv && asv run            # needs: pip install asv
    python -c "import benchmarks.bench_hashing"   # the import check CI can run
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from loopsafe import HasherNotAvailable, HashPool, PasswordHash, profiles

#: The passwords of django-asv's benchmark.
PASSWORDS = ["password123", "qwerty123", "helloworld123"]
HASHERS = ["pbkdf2_sha256", "pbkdf2_sha1", "argon2", "bcrypt_sha256", "scrypt"]
VARIANTS = ["blocking", "sync_to_async", "loopsafe"]
PROFILE = profiles.DJANGO_6_1


def _cli_json(*argv: str) -> dict[str, Any]:
    """Run the ``loopsafe`` command line with ``--json`` and return the document."""
    from loopsafe.cli import main  # noqa: PLC0415 - only the track benchmarks need it

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        status = main([*argv, "--no-progress", "--json", str(out)])
        if status != 0:
            message = f"loopsafe {' '.join(argv)} exited {status}"
            raise RuntimeError(message)
        document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return document


async def _gather(variant: str, facade: PasswordHash, encoded: list[str]) -> list[bool]:
    if variant == "blocking":

        async def check(password: str, stored: str) -> bool:
            return facade.verify(password, stored)

    elif variant == "sync_to_async":
        from asgiref.sync import sync_to_async  # noqa: PLC0415

        off_loop = sync_to_async(facade.verify, thread_sensitive=False)

        async def check(password: str, stored: str) -> bool:
            return await off_loop(password, stored)

    else:

        async def check(password: str, stored: str) -> bool:
            return await facade.averify(password, stored)

    return await asyncio.gather(
        *(check(password, stored) for password, stored in zip(PASSWORDS, encoded, strict=True))
    )


class AcheckPassword:
    """Three password checks gathered on one loop, per hasher and variant (django-asv PR 94)."""

    params: ClassVar = [HASHERS, VARIANTS]
    param_names: ClassVar = ["hasher", "variant"]
    timeout = 120

    def setup(self, hasher: str, variant: str) -> None:
        """Make the three stored hashes; skip a hasher whose library is missing."""
        chosen = PROFILE.hasher(hasher)
        try:
            chosen.check_available()
        except HasherNotAvailable as exc:
            raise NotImplementedError(str(exc)) from exc  # asv skips the benchmark
        self.pool = HashPool(name="asv")
        self.facade = PasswordHash([chosen], pool=self.pool)
        self.encoded = [chosen.hash(password) for password in PASSWORDS]
        self.variant = variant

    def teardown(self, hasher: str, variant: str) -> None:  # noqa: ARG002 - asv passes the params
        """Close the pool."""
        self.pool.close()

    def time_acheck_password(self, hasher: str, variant: str) -> None:  # noqa: ARG002
        """Check the three passwords at once, in a fresh event loop."""
        results = asyncio.run(_gather(self.variant, self.facade, self.encoded))
        if not all(results):
            message = "a password did not verify"
            raise AssertionError(message)


class LoopLag:
    """Loop lag and throughput during a 20-login burst (``loopsafe bench --users 20``)."""

    params: ClassVar = [HASHERS, ["sync_to_async", "loopsafe"]]
    param_names: ClassVar = ["hasher", "variant"]
    timeout = 900
    unit = "ms"

    def setup_cache(self) -> dict[str, dict[str, Any]]:
        """Run the burst once for every hasher and variant."""
        document = _cli_json("bench", "--users", "20", "--variant", "sync_to_async", "loopsafe")
        return {f"{r['algorithm']}/{r['variant']}": r for r in document["results"]}

    def _row(self, cache: dict[str, dict[str, Any]], hasher: str, variant: str) -> dict[str, Any]:
        key = f"{hasher}/{variant}"
        if key not in cache:
            message = f"{key} was skipped (library missing?)"
            raise NotImplementedError(message)
        return cache[key]

    def track_lag_p99_ms(
        self, cache: dict[str, dict[str, Any]], hasher: str, variant: str
    ) -> float:
        """Loop lag p99 during the burst, in ms."""
        return float(self._row(cache, hasher, variant)["lag_ms"]["p99"])

    def track_lag_max_ms(
        self, cache: dict[str, dict[str, Any]], hasher: str, variant: str
    ) -> float:
        """Worst loop lag during the burst, in ms."""
        return float(self._row(cache, hasher, variant)["lag_ms"]["max"])

    def track_throughput_ratio(
        self, cache: dict[str, dict[str, Any]], hasher: str, variant: str
    ) -> float:
        """Logins per second as a share of the machine's limit."""
        return float(self._row(cache, hasher, variant)["ratio"])

    track_throughput_ratio.unit = "ratio"  # type: ignore[attr-defined]  # asv reads it


class StormGoodput:
    """A 3x-capacity open-loop storm, 2 s client timeout (``loopsafe storm --load 3``)."""

    params: ClassVar = [["sync_to_async", "loopsafe"]]
    param_names: ClassVar = ["variant"]
    timeout = 900

    def setup_cache(self) -> dict[str, dict[str, Any]]:
        """Run the storm once for both variants."""
        document = _cli_json("storm", "--load", "3", "--timeout", "2", "--duration", "10")
        return {r["variant"]: r for r in document["results"]}

    def track_goodput(self, cache: dict[str, dict[str, Any]], variant: str) -> float:
        """Logins answered within the timeout per second, as a share of capacity."""
        return float(cache[variant]["goodput"])

    track_goodput.unit = "ratio"  # type: ignore[attr-defined]

    def track_wasted_hashes(self, cache: dict[str, dict[str, Any]], variant: str) -> int:
        """Hashes that ran to the end for clients that had already given up."""
        return int(cache[variant]["wasted"])

    track_wasted_hashes.unit = "hashes"  # type: ignore[attr-defined]
