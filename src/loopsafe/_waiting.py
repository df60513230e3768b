"""How an async caller waits for an answer from a worker thread: asyncio (and uvloop) or trio.

A worker thread answers through a ``Deliver`` callback, ``deliver(ok, value)``,
which may be called from any thread, at most once, possibly after the caller
has stopped waiting or its event loop has closed. Each backend turns that into
a wake-up on the caller's own loop (``call_soon_threadsafe`` on asyncio,
``TrioToken.run_sync_soon`` on trio), so one pool serves any number of loops.

The library is detected with sniffio when it is installed (trio depends on
it), else asyncio is assumed. Native backends rather than anyio: the core then
needs no dependency, and each wake-up is one thread-safe callback with no
portal or extra task in between.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Deliver", "current_library", "on_event_loop", "wait"]

Deliver: TypeAlias = "Callable[[bool, object], None]"
C = TypeVar("C")


def current_library() -> str:
    """Return ``"trio"`` or ``"asyncio"``: the async library running this task.

    Raises:
        RuntimeError: If called outside an async library loopsafe supports.
    """
    try:
        import sniffio
    except ImportError:  # pragma: no cover - sniffio comes with trio and anyio
        sniffio = None  # type: ignore[assignment]
    if sniffio is not None:
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = ""
        if library in {"asyncio", "trio"}:
            return library
        if library:
            raise RuntimeError(f"loopsafe supports asyncio and trio, not {library}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "loopsafe's async API must be awaited inside a running asyncio or trio loop"
        ) from None
    return "asyncio"


def on_event_loop() -> bool:
    """Whether this thread is running an event loop loopsafe supports (asyncio or trio) now."""
    try:
        current_library()
    except RuntimeError:
        return False
    return True


async def sleep(seconds: float) -> None:
    """Sleep on whichever loop runs this task (``asyncio.sleep`` or ``trio.sleep``).

    ``sleep(0)`` is a checkpoint: it lets the loop's other tasks run.
    """
    if current_library() == "trio":
        import trio

        if seconds <= 0:
            await trio.lowlevel.checkpoint()
        else:
            await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def wait(
    admit: Callable[[Deliver], C],
    abandon: Callable[[C, bool], None],
    timeout: float | None,
) -> Any:  # noqa: ANN401 - the pool types the result for its callers
    """Admit a call and wait for its answer on the running loop.

    Args:
        admit: Called once with the ``deliver`` callback; queues the call and
            returns a handle for it. If it raises (overload, closed pool) the
            exception propagates and nothing was queued.
        abandon: Called with the handle and ``expired`` when the caller stops
            waiting (cancellation: False; ``timeout``: True) before an answer.
        timeout: Seconds to wait, or None.

    Returns:
        The delivered value.

    Raises:
        TimeoutError: The timeout passed first.
        BaseException: The delivered exception, or the caller's cancellation.
    """
    if current_library() == "trio":
        return await _wait_trio(admit, abandon, timeout)
    return await _wait_asyncio(admit, abandon, timeout)


def _settle(future: asyncio.Future[Any], ok: bool, value: object) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)  # type: ignore[arg-type]  # ok=False carries an exception


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("the call did not finish within its timeout"))


async def _wait_asyncio(
    admit: Callable[[Deliver], C],
    abandon: Callable[[C, bool], None],
    timeout: float | None,
) -> Any:  # noqa: ANN401
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(ok: bool, value: object) -> None:
        # RuntimeError: the loop closed, so nobody is waiting for this answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, future, ok, value)

    handle = admit(deliver)
    timer = None if timeout is None else loop.call_later(timeout, _expire, future)
    try:
        return await future
    except TimeoutError:
        abandon(handle, True)
        raise
    except BaseException:
        abandon(handle, False)
        raise
    finally:
        if timer is not None:
            timer.cancel()


async def _wait_trio(
    admit: Callable[[Deliver], C],
    abandon: Callable[[C, bool], None],
    timeout: float | None,
) -> Any:  # noqa: ANN401
    import trio

    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    answer: list[tuple[bool, object]] = []

    def settle(ok: bool, value: object) -> None:
        if not answer:
            answer.append((ok, value))
            done.set()

    def deliver(ok: bool, value: object) -> None:
        # RunFinishedError: the run ended, so nobody is waiting for this answer any more.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(settle, ok, value)

    handle = admit(deliver)
    try:
        if timeout is None:
            await done.wait()
        else:
            with trio.fail_after(timeout):
                await done.wait()
    except trio.TooSlowError:
        abandon(handle, True)
        raise TimeoutError("the call did not finish within its timeout") from None
    except BaseException:
        abandon(handle, False)
        raise
    ok, value = answer[0]
    if ok:
        return value
    raise value  # type: ignore[misc]  # ok=False carries an exception
