"""Create the benchmark's users and measure what one login costs, with Django's own hashers.

    python -m e2eproject.seed --users 2000 [--stale]

Every user gets the same password and the same stored hash (verifying costs
the same whatever the salt, and this keeps seeding instant). ``--stale``
stores it at two thirds of the default hasher's iterations, as if an older
Django had made it (Django 6.1's users hashed by 5.2: 1,000,000 of
1,500,000), so every first login also rehashes and saves.

The password comes from ``LOOPSAFE_E2E_PASSWORD``. Prints one JSON line: the
Django version, the stored and current iterations, and the median CPU seconds
of one login (``check_password`` with a setter that makes the new hash, after
a warm-up), measured in this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

#: Users created per INSERT.
BATCH = 500


def _stale_iterations(current: int) -> int:
    step = 10_000 if current >= 100_000 else 10  # noqa: PLR2004 - readable round numbers
    return max(1, current * 2 // 3 // step * step)


def _cpu_seconds(work: object) -> float:
    if not callable(work):
        raise TypeError("work must be callable")
    work()
    costs = []
    for _ in range(3):
        start = time.process_time()
        work()
        costs.append(time.process_time() - start)
    return float(statistics.median(costs))


def main() -> None:
    """Seed the database named by the settings and print what was done."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--stale", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "e2eproject.settings")
    import django  # noqa: PLC0415 - after the settings module is chosen

    django.setup()
    from django.contrib.auth import get_user_model  # noqa: PLC0415
    from django.contrib.auth.hashers import check_password, get_hasher  # noqa: PLC0415
    from django.core.management import call_command  # noqa: PLC0415

    call_command("migrate", verbosity=0, interactive=False)
    password = os.environ["LOOPSAFE_E2E_PASSWORD"]
    hasher = get_hasher("default")
    current = int(hasher.iterations)  # PBKDF2: Django's default hasher
    stored = _stale_iterations(current) if args.stale else current
    encoded = hasher.encode(password, hasher.salt(), stored)

    user_model = get_user_model()
    have = user_model.objects.count()
    for start in range(have, args.users, BATCH):
        stop = min(start + BATCH, args.users)
        user_model.objects.bulk_create(
            user_model(username=f"user{i}", password=encoded) for i in range(start, stop)
        )
    user_model.objects.update(password=encoded)

    def login() -> None:
        # What a login costs the server's CPU: the check, and the new hash if stale.
        check_password(password, encoded, setter=lambda raw: hasher.encode(raw, hasher.salt()))

    print(
        json.dumps(
            {
                "django": django.get_version(),
                "python": platform.python_version(),
                "algorithm": hasher.algorithm,
                "iterations": current,
                "stored_iterations": stored,
                "users": args.users,
                "cpu_s_per_login": round(_cpu_seconds(login), 5),
            }
        )
    )


if __name__ == "__main__":
    main()
