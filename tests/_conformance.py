"""The conformance table: which guarantee every integration must give, and the few it cannot.

One table, integration x guarantee. tests/test_integrations_conformance.py
runs every cell of the web integrations and tests/django/test_conformance.py
every cell of Django (Django's tests need their own settings and database,
so they live in that folder); each checks that its cells are exactly the
table's, so a guarantee missing from one integration fails the build. A
cell the integration cannot give by its nature is listed in `NOT_APPLICABLE`
with the reason, never skipped silently.

Nothing here imports a framework.
"""

from __future__ import annotations

from typing import Final

#: The integrations, by the name the tests use.
INTEGRATIONS: Final = (
    "starlette",  # FastAPI/Starlette: lifespan(), EXCEPTION_HANDLERS, get_password_hash
    "litestar",  # LoopsafePlugin
    "aiohttp",  # loopsafe.aiohttp.setup()
    "fastapi_users",  # PasswordHelper in a FastAPI app with lifespan()
    "advanced_alchemy",  # LoopsafeHasher in a Litestar app with LoopsafePlugin
    "django",  # loopsafe's backend + OverloadMiddleware, settings.LOOPSAFE
)

#: The guarantees, each pinned by one test per integration.
GUARANTEES: Final = (
    "cold_burst_refused",  # a fresh app refuses what it cannot serve within max_queue_wait
    "host_limit",  # at most host_limit hashes at once across the host
    "max_memory",  # the hashes' memory is declared and bounded by max_memory
    "client_key",  # the request's client key reaches the pool (fair admission)
    "overloaded_503",  # Overloaded answers 503 with Retry-After
    "lag_monitor",  # monitor_lag runs a LoopLagMonitor for the app's life
    "bad_settings_fail_at_start",  # one clear error naming the setting, before serving
)

#: Cells an integration cannot give, with the reason.
NOT_APPLICABLE: Final[dict[tuple[str, str], str]] = {
    ("advanced_alchemy", "client_key"): (
        "LoopsafeHasher is a column type: it hashes for a model, not a request; a handler "
        "that wants keys verifies with the plugin's keyed PasswordHash (the litestar row)"
    ),
    ("fastapi_users", "bad_settings_fail_at_start"): (
        "PasswordHelper takes no pool settings: it hashes on the app's pool, which the "
        "Starlette lifespan owns and checks (the starlette row)"
    ),
    ("advanced_alchemy", "bad_settings_fail_at_start"): (
        "LoopsafeHasher takes no pool settings: it hashes on the app's pool, which "
        "LoopsafePlugin owns and checks (the litestar row)"
    ),
    ("django", "lag_monitor"): (
        "Django's ASGI handler has no lifespan, so no loop-owning start-up hook; "
        "run a LoopLagMonitor from the ASGI server's side"
    ),
}


def cells(integration: str) -> list[str]:
    """The guarantees ``integration`` must pass, in table order."""
    if integration not in INTEGRATIONS:
        raise ValueError(f"not an integration of the table: {integration}")
    return [g for g in GUARANTEES if (integration, g) not in NOT_APPLICABLE]
