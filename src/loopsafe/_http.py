"""What the web integrations answer when hashing is refused: the ``Retry-After`` value.

One rounding rule for every framework (Starlette, Litestar, aiohttp, Django):
`Overloaded.retry_after` is a float of seconds, and ``Retry-After`` takes whole
seconds (RFC 9110), so it is rounded up and never below 1; a value that is not
finite (no estimate yet) becomes 1.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = [
    "OVERLOADED_DETAIL",
    "SHUTTING_DOWN_DETAIL",
    "THROTTLED_DETAIL",
    "retry_after_seconds",
]

#: The ``detail`` of the JSON body answering `Overloaded`.
OVERLOADED_DETAIL: Final = "Password hashing is busy; retry later."
#: The ``detail`` of the JSON body answering `Throttled` (HTTP 429).
THROTTLED_DETAIL: Final = "Too many login attempts; retry later."
#: The ``detail`` of the JSON body answering `PoolClosed`.
SHUTTING_DOWN_DETAIL: Final = "The server is shutting down."


def retry_after_seconds(retry_after: float) -> int:
    """Return a ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    if not math.isfinite(retry_after):
        return 1
    return max(1, math.ceil(retry_after))
