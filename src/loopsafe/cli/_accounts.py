"""Test accounts and the small helpers every measurement shares (bench and storm)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loopsafe._lag import LoopLagMonitor
    from loopsafe.hashers import Hasher

__all__ = ["make_accounts", "rotate", "settle"]


def make_accounts(hasher: Hasher, users: int, distinct: int, workers: int) -> list[tuple[str, str]]:
    """Return ``users`` (password, stored hash) pairs sharing ``distinct`` real hashes.

    The hashes are made on ``workers`` threads (every hasher here releases the GIL).
    """
    passwords = [secrets.token_urlsafe(12) for _ in range(min(distinct, users))]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as executor:
        encoded = list(executor.map(hasher.hash, passwords))
    pairs = list(zip(passwords, encoded, strict=True))
    return [pairs[i % len(pairs)] for i in range(users)]


def rotate(items: Sequence[str], by: int) -> list[str]:
    """Return ``items`` rotated left by ``by`` places (alternating the order of variants)."""
    if not items:
        return []
    by %= len(items)
    return [*items[by:], *items[:by]]


async def settle(lag: LoopLagMonitor) -> None:
    """Let the ticker record the wake-up it is owed before the monitor stops.

    When the loop was blocked right up to the last answer (the ``blocking``
    variant), the ticker's timer is overdue but its task has not run yet;
    stopping the monitor now would cancel it and lose the one sample that
    shows the stall. Two intervals of sleep let it run.
    """
    await asyncio.sleep(2 * lag.interval)
