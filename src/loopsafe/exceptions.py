"""Every exception loopsafe raises on purpose.

The tree::

    LoopsafeError                  never raised itself; catch it to catch them all
    ├── Overloaded                 admission refused the call; carries retry_after (HTTP 503)
    ├── Throttled                  too many login attempts for an account or client;
    │                              refused before any hash (HTTP 429)
    ├── PoolClosed (RuntimeError)  the pool was closed before the call could run
    ├── HasherNotAvailable (ImportError)
    │                              the algorithm's library is not installed
    ├── HostBudgetUnavailable (OSError)
    │                              the host budget's lock files cannot be made or trusted
    └── UnknownAlgorithm (ValueError)
                                   no configured hasher matches an encoded string

Timeouts raise the built-in :class:`TimeoutError`, and wrong argument types the
built-in :class:`TypeError`, because that is what callers already catch.

No exception message ever contains a password: messages are built from
algorithm names, counts and durations only.
"""

from __future__ import annotations

__all__ = [
    "HasherNotAvailable",
    "HostBudgetUnavailable",
    "LoopsafeError",
    "Overloaded",
    "PoolClosed",
    "Throttled",
    "UnknownAlgorithm",
]


class LoopsafeError(Exception):
    """Base class of loopsafe's exceptions. Never raised directly."""


class Overloaded(LoopsafeError):
    """The pool refused a call because its queue would wait too long, or memory ran out.

    No answer was computed: the caller may retry after :attr:`retry_after` seconds, or
    answer its own client with HTTP 503 and a ``Retry-After`` header.

    Attributes:
        retry_after: Estimated seconds until a call would be admitted again.
            For a ``fair-share`` refusal it is the time the client's own share
            of the pool needs to drain, so a flooding client is told to wait
            longer than the others.
        estimated_wait: The queue wait the call would have had, in seconds.
        queued: Calls waiting in the queue when the call was refused.
        reason: Why: ``"pending"`` (the queue was full), ``"queue-wait"`` (the
            estimated wait was too long), ``"fair-share"`` (the client's key
            held more than its share of a busy pool; also given to a queued
            call pushed out for a client below its share) or ``"priority"``
            (a queued call pushed out for a call of a higher priority) or
            ``"memory"`` (the call was admitted, but its hash could not get
            its memory: an mmap or malloc the kernel refused, a `MemoryError`;
            its worker and budget are free again).
    """

    def __init__(
        self,
        retry_after: float,
        *,
        estimated_wait: float,
        queued: int,
        reason: str = "queue-wait",
    ) -> None:
        """Record the estimate that made admission refuse the call."""
        self.retry_after = retry_after
        self.estimated_wait = estimated_wait
        self.queued = queued
        self.reason = reason
        super().__init__(
            f"password hashing is overloaded ({reason}: {queued} calls queued, estimated wait "
            f"{estimated_wait:.2f}s); retry after {retry_after:.2f}s"
        )

    @property
    def retry_after_header(self) -> str:
        """`retry_after` as an HTTP ``Retry-After`` value: whole seconds, rounded up, at least 1.

        The rule every integration (Starlette, Django, Litestar, aiohttp)
        answers with; a non-finite estimate becomes 1.
        """
        from loopsafe._http import retry_after_seconds  # noqa: PLC0415 - exceptions import nothing at the top

        return str(retry_after_seconds(self.retry_after))

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with keyword-only arguments (for process pools and logging handlers)."""
        return (
            _rebuild_overloaded,
            (self.retry_after, self.estimated_wait, self.queued, self.reason),
        )


def _rebuild_overloaded(
    retry_after: float, estimated_wait: float, queued: int, reason: str = "queue-wait"
) -> Overloaded:
    return Overloaded(retry_after, estimated_wait=estimated_wait, queued=queued, reason=reason)


class Throttled(LoopsafeError):
    """`loopsafe.throttle.LoginThrottle` refused a login attempt before any hash.

    Too many attempts for one account (credential stuffing against a
    username) or from one client. Answer HTTP 429 with ``Retry-After``,
    distinct from the 503 of an `Overloaded` pool. The message names the
    scope, never the username or the client.

    Attributes:
        retry_after: Seconds until the window lets an attempt through again.
        scope: ``"account"``, ``"client"`` or ``"device"`` (a trusted device's
            own budget for the account).
    """

    def __init__(self, retry_after: float, *, scope: str) -> None:
        """Record which budget refused and when it lets an attempt through again."""
        self.retry_after = retry_after
        self.scope = scope
        super().__init__(
            f"too many login attempts for this {scope}; retry after {retry_after:.0f}s"
        )

    @property
    def retry_after_header(self) -> str:
        """`retry_after` as an HTTP ``Retry-After`` value: whole seconds, rounded up, at least 1."""
        from loopsafe._http import retry_after_seconds  # noqa: PLC0415 - exceptions import nothing at the top

        return str(retry_after_seconds(self.retry_after))

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only scope."""
        return (_rebuild_throttled, (self.retry_after, self.scope))


def _rebuild_throttled(retry_after: float, scope: str) -> Throttled:
    return Throttled(retry_after, scope=scope)


class PoolClosed(LoopsafeError, RuntimeError):
    """The pool was closed: new calls are refused and queued calls are answered with this."""


class HasherNotAvailable(LoopsafeError, ImportError):
    """An algorithm's library is missing; the message names the extra to install."""


class UnknownAlgorithm(LoopsafeError, ValueError):
    """No configured hasher can read this encoded string."""


class HostBudgetUnavailable(LoopsafeError, OSError):
    """A host budget (``host_limit``) was asked for but its lock files cannot be used.

    Raised when the pool is made, never later, so a deployment never runs
    without the bound it asked for. The message says which directory and how
    to choose another (``LOOPSAFE_RUNTIME_DIR``).
    """
