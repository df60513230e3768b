"""The pools' life in the process: what happens to every live pool at ``fork`` and at exit.

In a forked child the parent's calls and threads are gone: each live pool
rebuilds the parts that held them (its ``_after_fork_in_child``). At
interpreter exit each live pool is closed first, so queued callers are
answered before the daemon worker threads stop. Pools are held weakly.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Protocol

__all__ = ["LIVE", "Mortal"]


class Mortal(Protocol):
    """What a pool offers the process's life: a reset after fork, and close."""

    def _after_fork_in_child(self) -> None: ...

    def close(self) -> None:
        """Stop admitting calls and answer the queued ones."""


#: Every pool alive in this process.
LIVE: weakref.WeakSet[Mortal] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(LIVE):
        pool._after_fork_in_child()  # noqa: SLF001 - the protocol of this module


def _close_all_at_exit() -> None:
    for pool in list(LIVE):
        pool.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
