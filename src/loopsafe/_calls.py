"""One call's life in the pool: its states, its hidden arguments, and `bind`.

A call's arguments hold passwords. They travel inside `_Hidden`, whose repr
shows only how many there are, so no loopsafe frame or object ever shows a
password to an error reporter or a log; `bind` gives users the same for
keyword arguments (where ``functools.partial`` would show them in its repr).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    import contextvars
    from collections.abc import Callable

    from loopsafe import _waiting
    from loopsafe._fair import Key

__all__ = ["bind"]

T = TypeVar("T")

# Life of a call. QUEUED -> RUNNING -> DONE is the normal path; a caller that
# stops waiting moves its call to CANCELLED or EXPIRED (from QUEUED it is then
# removed and never runs; from RUNNING the worker finishes and drops the result).
_QUEUED: Final = 0
_RUNNING: Final = 1
_DONE: Final = 2
_CANCELLED: Final = 3
_EXPIRED: Final = 4
_SHED: Final = 5  # pushed out of the queue for a fairer claim; answered with Overloaded


class _Hidden:
    """A call's arguments, kept out of sight.

    `HashPool.run` wraps its ``*args`` in one and deletes its own reference,
    so no loopsafe frame holds a password in a plain local: error reporters
    that capture frame locals (Sentry, rich's ``show_locals``) scrub
    variables named ``password`` but not a tuple named ``args``, and they
    show other objects by their repr, which this one keeps empty.
    """

    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values

    def __repr__(self) -> str:
        return f"<{len(self.values)} arguments, hidden>"


class _Call(Generic[T]):
    """One admitted call: what to run, where to send the answer, and its state."""

    __slots__ = (
        "args",
        "context",
        "deadline",
        "deliver",
        "fn",
        "key",
        "memory",
        "priority",
        "state",
    )

    def __init__(
        self,
        fn: Callable[..., T],
        args: _Hidden,
        deliver: _waiting.Deliver,
        deadline: float | None,
        context: contextvars.Context | None,
        *,
        key: Key = None,
        priority: int = 0,
        memory: int = 0,
    ) -> None:
        self.fn = fn
        self.args = args
        self.deliver = deliver
        self.deadline = deadline
        self.context = context
        self.key = key
        self.priority = priority
        self.memory = memory  # bytes the call declares it needs while it runs
        self.state: int = _QUEUED

    def __repr__(self) -> str:
        # Never show args (they hold passwords) nor the key (a client address).
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"<loopsafe call {name} state={self.state}>"


class _Bound(Generic[T]):
    """``fn`` with arguments bound, like `functools.partial`, but with a repr that hides them."""

    __slots__ = ("_args", "_fn", "_kwargs")

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._fn = fn
        self._args = _Hidden(args)
        self._kwargs = _Hidden(tuple(kwargs.items()))

    def __call__(self) -> T:
        return self._fn(*self._args.values, **dict(self._kwargs.values))

    def __repr__(self) -> str:
        name = getattr(self._fn, "__qualname__", type(self._fn).__name__)
        count = len(self._args.values) + len(self._kwargs.values)
        return f"<bound {name}: {count} arguments, hidden>"


def bind(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Callable[[], T]:  # noqa: ANN401 - any callable's arguments
    """Return ``fn`` with ``args`` and ``kwargs`` bound, for `HashPool.run`, hiding them.

    Use it where you would use `functools.partial` to pass keyword arguments
    through ``pool.run`` (which takes positional arguments only): a partial's
    repr shows every argument, so a password bound into one reaches any log
    line, error report or debugger that prints it. This one's repr shows the
    callable's name and how many arguments it holds, nothing else::

        await pool.run(loopsafe.bind(hasher.verify, password, encoded=stored))

    Raises:
        TypeError: If ``fn`` is not callable.
    """
    if not callable(fn):
        raise TypeError(f"bind needs a callable, not {type(fn).__name__}")
    return _Bound(fn, args, kwargs)
