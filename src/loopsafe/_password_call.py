"""The one way a password operation reaches the pool: with its key, priority, memory and cost.

Every password path (`PasswordHash`'s async methods, fastapi-users'
``PasswordHelper``, advanced-alchemy through `PasswordHash`, and Django's
``averify_password``, ``amake_password``, backend and patched auth) calls
`run_password_call` with a `Route`. A route cannot be made without all four
things admission needs, so no path can forget one:

- ``key`` and ``priority``: whose call it is, for fair admission;
- ``memory``: bytes the hash holds while it runs, counted against ``max_memory``;
- ``cost``: the estimated seconds of one hash, or until it is measured the
  preferred hasher's `Hasher.estimated_seconds` itself, which a cold pool
  runs once on a worker thread (never here, on the loop) to judge its queue.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from loopsafe._calls import bind

if sys.version_info >= (3, 11):
    from typing import TypeVarTuple, Unpack
else:  # pragma: no cover - exercised on 3.10 only
    from typing_extensions import TypeVarTuple, Unpack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from loopsafe._fair import Key
    from loopsafe._pool import HashPool
    from loopsafe._service import Cost
    from loopsafe.hashers import Hasher

__all__ = ["Route", "hasher_cost", "hashers_route", "run_password_call"]

T = TypeVar("T")
PosArgsT = TypeVarTuple("PosArgsT")


@dataclass(frozen=True)
class Route:
    """What the pool is told about one password call.

    Attributes:
        key: The client the call is for (None: the shared key).
        priority: -3 to 3, higher first (see `HashPool.run`).
        memory: Bytes one hash holds while it runs (0: negligible).
        cost: Estimated seconds of one hash; a callable that measures them
            (run by a cold pool on a worker); or None.
    """

    key: Key
    priority: int
    memory: int
    cost: Cost


def hashers_route(hashers: Iterable[Hasher], *, key: Key, priority: int) -> Route:
    """The route for a call with these hashers, preferred first.

    Memory is the most any of them needs (a verify may use any one); cost is
    the preferred hasher's estimate if it was measured, else its estimator for
    a cold pool to run on a worker (never measured here: this runs on the loop).
    """
    ordered = tuple(hashers)
    return Route(
        key=key,
        priority=priority,
        memory=max(hasher.memory_per_hash() for hasher in ordered),
        cost=hasher_cost(ordered[0]),
    )


def hasher_cost(hasher: Hasher) -> Cost:
    """The ``cost=`` for a hash by ``hasher``: its cached estimate, else its estimator.

    Never measures: this runs on the event loop. A cold pool runs the
    estimator once, on a worker thread.
    """
    cached = hasher.cached_estimate()
    return hasher.estimated_seconds if cached is None else cached


async def run_password_call(
    pool: HashPool,
    route: Route,
    fn: Callable[[Unpack[PosArgsT]], T],
    /,
    *args: Unpack[PosArgsT],
    timeout: float | None = None,
) -> T:
    """Run ``fn(*args)`` on ``pool`` with everything ``route`` says about the call.

    Raises:
        loopsafe.Overloaded: The pool refused the call; nothing ran.
        TimeoutError: ``timeout`` passed first (see `HashPool.run`).
    """
    call = bind(fn, *args)  # its repr hides the arguments: they hold the password
    del args  # no frame of this function keeps them in a plain local
    return await pool.run(
        call,
        key=route.key,
        priority=route.priority,
        timeout=timeout,
        memory=route.memory,
        cost=route.cost,
    )
