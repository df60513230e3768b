"""/health latency of the FastAPI example during a 20-login burst, with and without loopsafe.

Variants (each a fresh uvicorn process on 127.0.0.1, on a free port, serving
``examples/fastapi_app.py`` with real default parameters):

- ``pwdlib``: ``USE_LOOPSAFE=0``, the FastAPI tutorial's way: pwdlib's
  ``PasswordHash.recommended()`` (Argon2id t=3, m=64 MiB, p=4) called
  synchronously inside ``async def``;
- ``loopsafe``: loopsafe's ``PasswordHash.recommended()`` (Argon2id at Django's
  defaults: t=2, m=100 MiB, p=8) on the pool, every call admitted
  (``LOOPSAFE_MAX_QUEUE_WAIT=none``), so it does all 20 hashes like pwdlib;
- ``loopsafe-1s``: the same with the default 1 s admission budget: what does
  not fit is refused at once with 503 + Retry-After.

The burst (``loopsafe.cli._harness.run_burst``: a separate httpx process signs
one user up, then sends 20 concurrent logins while probing /health every
10 ms, bounded by count and time) is the same in every server benchmark.
Rounds rotate the variants' order; the summary gives the median over rounds of
each figure, as docs/measuring.md asks. The CPU cost of one verification with
each parameter set is measured first, in this process, because the two
libraries' defaults differ.

    python benchmarks/fastapi_health.py [--rounds 3] [--logins 20]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pwdlib import PasswordHash as PwdlibHash

from loopsafe import PasswordHash
from loopsafe.cli import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
VARIANTS = {
    "pwdlib": {"USE_LOOPSAFE": "0"},
    "loopsafe": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "none"},
    "loopsafe-1s": {"USE_LOOPSAFE": "1", "LOOPSAFE_MAX_QUEUE_WAIT": "1.0"},
}


def run(variant: str, logins: int) -> dict[str, float]:
    """Serve the example for ``variant``, run one burst against it, stop it."""
    env = {
        **os.environ,
        **VARIANTS[variant],
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("LOOPSAFE_PROFILE", None)
    with harness.serving(harness.uvicorn("examples.fastapi_app:app"), env=env, cwd=ROOT) as (
        base,
        server,
    ):
        return harness.run_burst(base, server.pid, logins=logins)


def main() -> None:
    """Measure every variant ``--rounds`` times in rotating order and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args()
    print(harness.cores_line(f"{args.logins}-login burst, {args.rounds} rounds"))
    for name, hasher in (
        ("pwdlib", PwdlibHash.recommended()),
        ("loopsafe", PasswordHash.recommended()),
    ):
        cpu = harness.cpu_per_call(hasher.verify, PASSWORD, hasher.hash(PASSWORD))
        print(f"# CPU per verification, {name} recommended(): {cpu * 1000:.0f} ms")
    results = harness.run_bursts(
        list(VARIANTS), args.rounds, lambda variant: run(variant, args.logins)
    )
    ratio = harness.median_of(results["pwdlib"], "p99_ms") / harness.median_of(
        results["loopsafe"], "p99_ms"
    )
    print(f"\n/health p99, pwdlib on the loop / loopsafe: {ratio:.0f}x")


if __name__ == "__main__":
    main()
