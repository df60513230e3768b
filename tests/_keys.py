"""A flood held in the pool while one request comes in: does the request's key reach the pool?

The integrations' key tests share it. The pool must have one worker,
``max_pending=2`` and no wait budget (``max_queue_wait=None``): three gated
calls from ``flood_key`` fill it (one running, two queued). Then:

- a request whose key is another one gets in: the flood's newest queued call
  is shed (`Overloaded`, reason ``fair-share``) and the request is served;
- a request whose key *is* ``flood_key`` (or, unkeyed, ``None`` against an
  unkeyed flood) is refused at once: 503, the flood untouched.

If the integration dropped the key, the first case would still pass but the
second would not (``None`` would be a newcomer), so the pair pins it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, TypeVar

import anyio

from loopsafe import HashPool, Overloaded

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from loopsafe._fair import Key

T = TypeVar("T")

#: Pool settings for `against_a_flood` (pass to the integration's constructor).
FLOOD_POOL = {"max_workers": 1, "max_pending": 2, "max_queue_wait": None}


async def against_a_flood(
    pool: HashPool, request: Callable[[], Awaitable[T]], *, flood_key: Key
) -> tuple[T, list[object]]:
    """Fill ``pool`` with three gated calls from ``flood_key``, make ``request()``, release.

    Returns the request's result and the three flood calls' outcomes (None
    when served, the `Overloaded` when shed), oldest first.
    """
    gate = threading.Event()
    outcomes: dict[int, object] = {}
    answer: list[T] = []

    async def flood(n: int) -> None:
        try:
            await pool.run(gate.wait, 30, key=flood_key)
            outcomes[n] = None
        except Overloaded as refused:
            outcomes[n] = refused

    async def ask() -> None:
        answer.append(await request())

    try:
        async with anyio.create_task_group() as tg:
            for n in (1, 2, 3):
                tg.start_soon(flood, n)
                with anyio.fail_after(10):
                    # The first must be running before the third comes, or the
                    # queue (max_pending=2) would refuse the flood itself.
                    while pool.statistics().running < 1 or pool.statistics().queued < n - 1:
                        await anyio.sleep(0.002)
            shed = pool.statistics().shed
            tg.start_soon(ask)
            # Refused at once, or admitted by pushing the flood's newest call out.
            with anyio.fail_after(10):
                while not answer and pool.statistics().shed == shed:
                    await anyio.sleep(0.002)
            gate.set()
    finally:
        gate.set()
    return answer[0], [outcomes[n] for n in (1, 2, 3)]


def shed_for_fair_share(outcomes: list[object]) -> bool:
    """Whether the flood's first two calls ran and its newest was shed for fair share."""
    first, second, newest = outcomes
    return (
        first is None
        and second is None
        and isinstance(newest, Overloaded)
        and newest.reason == "fair-share"
    )
