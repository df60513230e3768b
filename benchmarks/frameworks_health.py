"""/health latency of the Litestar and aiohttp examples during a login burst: loopsafe or not.

Each variant is a fresh server process on 127.0.0.1 (a free port) serving one
of the examples with Argon2id at Django 6.1's defaults (t=2, 100 MiB, p=8) in
every variant, so each does the same work per login:

- ``litestar-executor``: ``examples/litestar_app.py`` under uvicorn with
  ``USE_LOOPSAFE=0``: advanced-alchemy's ``Argon2Hasher`` column, login
  verified through ``run_in_executor(None, ...)`` (litestar-fullstack's way:
  the shared default executor, no bound, no shedding);
- ``aiohttp-pwdlib``: ``examples/aiohttp_app.py`` on aiohttp's own runner with
  ``USE_LOOPSAFE=0``: pwdlib's Argon2 verify inside ``async def`` (the
  aiohttp-security ``db_auth`` example's way, with passlib there);
- ``<framework>-loopsafe``: the same example with loopsafe, every call admitted
  (``LOOPSAFE_MAX_QUEUE_WAIT=none``), so it does all 20 hashes like the others;
- ``<framework>-loopsafe-1s``: the default 1 s admission budget: what does not
  fit is refused at once with 503 + Retry-After.

The burst is ``loopsafe.cli._harness.run_burst`` (a separate httpx process
registers one user, then sends 20 concurrent logins while probing /health
every 10 ms until the burst is answered, bounded by count and time). Rounds
rotate the variants' order; the summary gives the median over rounds of each
figure. "server CPU share" is the server process's CPU seconds during the burst
over (burst seconds x cores): its share of the machine.

    flock <lock file> python benchmarks/frameworks_health.py [--rounds 3]
        [--logins 20] [--framework litestar|aiohttp|all]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from loopsafe import PasswordHash
from loopsafe.cli import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
LITESTAR = harness.uvicorn("examples.litestar_app:app")
AIOHTTP = ["examples/aiohttp_app.py", "--port"]
ALL_IN = {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"}
ONE_SECOND = {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"}
VARIANTS: dict[str, tuple[str, list[str], dict[str, str]]] = {
    "litestar-executor": ("litestar", LITESTAR, {"USE_LOOPSAFE": "0"}),
    "litestar-loopsafe": ("litestar", LITESTAR, ALL_IN),
    "litestar-loopsafe-1s": ("litestar", LITESTAR, ONE_SECOND),
    "aiohttp-pwdlib": ("aiohttp", AIOHTTP, {"USE_LOOPSAFE": "0"}),
    "aiohttp-loopsafe": ("aiohttp", AIOHTTP, ALL_IN),
    "aiohttp-loopsafe-1s": ("aiohttp", AIOHTTP, ONE_SECOND),
}


def run(variant: str, logins: int) -> dict[str, float]:
    """Start the server for ``variant``, run one burst against it, stop it (by its pid)."""
    _, argv, variant_env = VARIANTS[variant]
    env = {
        **os.environ,
        **variant_env,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("LOOPSAFE_PROFILE", None)
    env.pop("APP_DB", None)
    with harness.serving(argv, env=env, cwd=ROOT) as (base, server):
        return harness.run_burst(base, server.pid, logins=logins, signup="/register")


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--framework", choices=["litestar", "aiohttp", "all"], default="all")
    args = parser.parse_args()
    names = [n for n, (fw, _, _) in VARIANTS.items() if args.framework in {"all", fw}]
    what = f"{args.logins}-login burst, {args.rounds} rounds; Argon2id t=2 m=100 MiB p=8 everywhere"
    print(harness.cores_line(what))
    hasher = PasswordHash.recommended()
    cpu = harness.cpu_per_call(hasher.verify, PASSWORD, hasher.hash(PASSWORD))
    print(f"# CPU per verification: {cpu * 1000:.0f} ms")
    results = harness.run_bursts(names, args.rounds, lambda variant: run(variant, args.logins))
    for framework, baseline in (("litestar", "executor"), ("aiohttp", "pwdlib")):
        if f"{framework}-loopsafe" in results:
            ours = harness.median_of(results[f"{framework}-loopsafe"], "p99_ms")
            theirs = harness.median_of(results[f"{framework}-{baseline}"], "p99_ms")
            print(f"{framework}: /health p99, {baseline} / loopsafe: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
