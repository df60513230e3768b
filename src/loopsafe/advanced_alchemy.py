"""advanced-alchemy: a backend for its ``PasswordHash`` column type that hashes on the pool.

advanced-alchemy's ``PasswordHash`` column hashes in ``process_bind_param``,
synchronously, while the session flushes; under an ``AsyncSession`` that flush
runs on the event loop's thread, so every registration stalls the loop for a
whole Argon2 hash. `LoopsafeHasher` is a drop-in backend for that column::

    from advanced_alchemy.types import PasswordHash
    from loopsafe.advanced_alchemy import LoopsafeHasher

    hasher = LoopsafeHasher()  # loopsafe.PasswordHash.recommended()

    class User(base.UUIDBase):
        password: Mapped[str] = mapped_column(PasswordHash(backend=hasher))

    # register: hash on the pool first, the flush then only stores the string
    user = User(name=name, password=await hasher.ahash(password))
    # login: verify (and upgrade an old hash) on the pool
    ok, new_hash = await hasher.averify_and_update(password, user.password)

Where the hashing happens:

- ``await hasher.ahash(password)`` hashes on loopsafe's pool and returns a
  `Hashed` string, which the column stores as it is. A full pool raises
  `Overloaded` here, in the handler, where the web integrations answer 503.
- A plain password assigned to the column and flushed by an ``AsyncSession``
  is hashed on the pool too: the backend hands the hash to the session's
  event loop through SQLAlchemy's greenlet bridge (``sqlalchemy.util.await_``)
  and the loop runs other requests meanwhile. SQLAlchemy wraps an error
  raised there (`Overloaded` too) in ``StatementError``; ``ahash`` first is the
  pattern that keeps the 503.
- With a plain (synchronous) ``Session``, on a thread that runs no event loop,
  the work is done inline, as advanced-alchemy's own backends do.
- Anything synchronous on the event loop's own thread outside a flush
  (``user.password.verify(...)`` in an ``async def``) raises `RuntimeError`
  naming the ``await`` to use instead: it would block every request.

Hashes are Django-format (``argon2$argon2id$...``); the bare ``$argon2id$...``
strings of advanced-alchemy's ``Argon2Hasher`` and pwdlib, and ``$2b$...``
bcrypt, verify too and are upgraded by `LoopsafeHasher.averify_and_update`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

try:
    from advanced_alchemy.types.password_hash.base import HashedPassword, HashingBackend
    from sqlalchemy import util as _sa_util
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "loopsafe.advanced_alchemy needs advanced-alchemy: pip install 'loopsafe[advanced-alchemy]'"
    ) from exc

from loopsafe._api import PasswordHash
from loopsafe.exceptions import UnknownAlgorithm

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from sqlalchemy import BinaryExpression, ColumnElement

__all__ = ["Hashed", "LoopsafeHasher"]

_T = TypeVar("_T")

# SQLAlchemy 2.1 names it await_; 2.0 await_only (kept in 2.1 as an alias).
_await: Callable[[Awaitable[Any]], Any] = getattr(_sa_util, "await_", None) or _sa_util.await_only


def _in_sqlalchemy_greenlet() -> bool:
    """Return whether this code runs inside an ``AsyncSession``'s greenlet (a flush, a load).

    The test SQLAlchemy's own ``await_`` makes before it switches greenlets.
    """
    try:
        import greenlet  # type: ignore[import-untyped]  # noqa: PLC0415 - no stubs; SQLAlchemy's asyncio extra brings it
    except ImportError:  # pragma: no cover - no greenlet, no AsyncSession
        return False
    return bool(getattr(greenlet.getcurrent(), "__sqlalchemy_greenlet_provider__", False))


def _on_loop_thread() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Hashed(str):
    """A hash that `LoopsafeHasher.ahash` made: the column stores it without hashing again."""

    __slots__ = ()


def _encoded(hashed: HashedPassword | str | None) -> str | None:
    if hashed is None:
        return None
    if isinstance(hashed, HashedPassword):
        return hashed.hash_string
    if isinstance(hashed, str):
        return str(hashed)
    raise TypeError(
        f"expected the column's HashedPassword, a hash string or None, not {type(hashed).__name__}"
    )


class LoopsafeHasher(HashingBackend):
    """advanced-alchemy ``HashingBackend`` that runs loopsafe's `PasswordHash` off the loop.

    Args:
        password_hash: The hasher; default `PasswordHash.recommended()`
            (Argon2id at Django's defaults, reading older formats). Its pool
            is looked up at each call, so a pool configured later (by
            `loopsafe.litestar.LoopsafePlugin` or `loopsafe.configure`) is used.

    Raises:
        TypeError: If ``password_hash`` is not a loopsafe `PasswordHash`.
    """

    def __init__(self, password_hash: PasswordHash | None = None) -> None:
        """Keep the hasher."""
        if password_hash is not None and not isinstance(password_hash, PasswordHash):
            raise TypeError(
                f"LoopsafeHasher takes a loopsafe PasswordHash, not {type(password_hash).__name__}"
            )
        self.password_hash = (
            password_hash if password_hash is not None else PasswordHash.recommended()
        )

    def __repr__(self) -> str:
        """Name the hashers (never a password)."""
        return f"LoopsafeHasher({self.password_hash!r})"

    # -- async: what handlers call ------------------------------------------------

    async def ahash(self, value: str | bytes) -> Hashed:
        """Hash ``value`` on the pool; assign the result to the column.

        Raises:
            TypeError: If ``value`` is not str or bytes.
            Overloaded: If the pool refuses the call (answer 503).
        """
        return Hashed(await self.password_hash.ahash(value))

    async def averify(self, plain: str | bytes | None, hashed: HashedPassword | str | None) -> bool:
        """Verify on the pool. A None hash (an unknown user) costs one hash and is False."""
        return await self.password_hash.averify(plain, _encoded(hashed))

    async def averify_and_update(
        self, plain: str | bytes | None, hashed: HashedPassword | str | None
    ) -> tuple[bool, Hashed | None]:
        """Verify on the pool and, if the hash is outdated, make its replacement in the same call.

        Returns:
            ``(ok, new_hash)``: assign ``new_hash`` to the column when it is not None.
        """
        ok, new = await self.password_hash.averify_and_update(plain, _encoded(hashed))
        return ok, None if new is None else Hashed(new)

    # -- the synchronous protocol advanced-alchemy calls ----------------------------

    def _run(
        self, sync: Callable[[], _T], make_async: Callable[[], Awaitable[_T]], what: str
    ) -> _T:
        if _in_sqlalchemy_greenlet():
            result: _T = _await(make_async())
            return result
        if _on_loop_thread():
            self._refuse(what)
        return sync()

    @staticmethod
    def _refuse(what: str) -> NoReturn:
        raise RuntimeError(
            f"LoopsafeHasher.{what}() was called on the event loop's thread, where it would "
            f"block every request: use 'await hasher.a{what}(...)' instead"
        )

    def hash(self, value: str | bytes) -> str:
        """Return the column's value: a `Hashed` as it is, else the hash of ``value``.

        Inside an ``AsyncSession`` flush the hash runs on the pool while the
        loop serves others; on a thread without an event loop it runs inline.

        Raises:
            RuntimeError: If called on an event loop's thread outside a flush.
        """
        if isinstance(value, Hashed):
            return str(value)
        return self._run(
            lambda: self.password_hash.hash(value),
            lambda: self.password_hash.ahash(value),
            "hash",
        )

    def verify(self, plain: str | bytes, hashed: str) -> bool:
        """Verify ``plain`` against ``hashed`` (``HashedPassword.verify`` calls this).

        Raises:
            RuntimeError: If called on an event loop's thread outside a flush:
                use `averify`.
        """
        return self._run(
            lambda: self.password_hash.verify(plain, hashed),
            lambda: self.password_hash.averify(plain, hashed),
            "verify",
        )

    def needs_rehash(self, hashed: str) -> bool:
        """Return whether ``hashed`` has another algorithm or other parameters; no hashing.

        False for a string no configured hasher reads, as advanced-alchemy asks.
        """
        try:
            hasher = self.password_hash.identify(hashed)
        except (UnknownAlgorithm, TypeError):
            return False
        if hasher is not self.password_hash.preferred:
            return True
        return hasher.must_update(hashed)

    def compare_expression(self, column: ColumnElement[str], plain: Any) -> BinaryExpression[bool]:  # noqa: ANN401 - advanced-alchemy's signature
        """Not supported: a salted hash cannot be compared in SQL.

        Raises:
            NotImplementedError: Always, as advanced-alchemy's own backends do.
        """
        raise NotImplementedError("LoopsafeHasher does not support direct SQL comparison")
