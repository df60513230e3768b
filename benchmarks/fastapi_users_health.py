"""/health latency of a fastapi-users app during a 20-login Argon2 burst: stock vs loopsafe.

Variants (each a fresh uvicorn process on 127.0.0.1, on a free port, serving
``examples/fastapi_users_app.py``: fastapi-users 15, SQLAlchemy + aiosqlite, JWT
login at ``/auth/jwt/login``), all at the same Argon2id costs, Django 6.1's
defaults (t=2, m=100 MiB, p=8), which loopsafe's ``PasswordHash.recommended()``
uses:

- ``stock``: ``USE_LOOPSAFE=0``, fastapi-users' ``BaseUserManager`` and its
  pwdlib ``PasswordHelper`` (given those costs): every hash on the event loop;
- ``loopsafe``: the manager on ``PoolPasswordManagerMixin`` with loopsafe's
  ``PasswordHelper``, every call admitted (``LOOPSAFE_MAX_QUEUE_WAIT=none``),
  so it does all 20 hashes like stock;
- ``loopsafe-1s``: the same with the default 1 s admission budget: what does
  not fit is refused at once with 503 + Retry-After;
- ``floor``: ``loopsafe`` with near-free hashes (``LOOPSAFE_PROFILE=cheap``):
  what 20 logins cost the loop in fastapi-users itself (form parsing, the
  SQLAlchemy/aiosqlite query, the JWT), which no hashing strategy removes.

The burst is ``loopsafe.cli._harness.run_burst`` (a separate httpx process
registers one user, then sends 20 concurrent logins while probing /health
every 10 ms, bounded by count and time), the same in every server benchmark.
Rounds rotate the variants' order; the summary gives the median over rounds
of each figure, and the CPU share of the server process during the burst
(docs/measuring.md). On a shared machine, hold its benchmark lock
(``flock LOCKFILE python ...``) so no other benchmark overlaps:

    python benchmarks/fastapi_users_health.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from loopsafe import PasswordHash
from loopsafe.cli import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TARGET_P99_MS = 30.0
VARIANTS = {
    "stock": {"USE_LOOPSAFE": "0"},
    "loopsafe": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"},
    "loopsafe-1s": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"},
    "floor": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none", "LOOPSAFE_PROFILE": "cheap"},
}


def run(variant: str, logins: int) -> dict[str, float]:
    """Serve the example for ``variant``, run one burst against it, stop it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("LOOPSAFE_PROFILE", None)
    env.update(VARIANTS[variant])
    app = harness.uvicorn("examples.fastapi_users_app:app")
    with harness.serving(app, env=env, cwd=ROOT) as (base, server):
        return harness.run_burst(
            base,
            server.pid,
            logins=logins,
            signup="/auth/register",
            login="/auth/jwt/login",
            form=True,
            username="ada@example.org",
        )


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    print(harness.cores_line(f"{args.logins}-login burst, {args.rounds} rounds"))
    hasher = PasswordHash.recommended()
    cpu = harness.cpu_per_call(hasher.verify, PASSWORD, hasher.hash(PASSWORD))
    print(f"# CPU per verification, Argon2id t=2 m=100 MiB p=8: {cpu * 1000:.0f} ms")
    results = harness.run_bursts(
        list(VARIANTS), args.rounds, lambda variant: run(variant, args.logins)
    )
    base = harness.median_of(results["loopsafe"], "p99_ms")
    worst = harness.median_of(results["stock"], "p99_ms")
    print(f"\n/health p99, stock fastapi-users / loopsafe: {worst / base:.0f}x")
    verdict = "met" if base <= TARGET_P99_MS else "NOT met"
    print(f"target /health p99 <= {TARGET_P99_MS:.0f} ms with loopsafe: {verdict} ({base:.1f} ms)")


if __name__ == "__main__":
    main()
