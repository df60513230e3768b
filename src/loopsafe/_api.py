"""The facade: `PasswordHash`, pwdlib's API with Django's semantics and async twins.

The synchronous methods do the work inline, like pwdlib. Each ``a``-prefixed
twin runs the same synchronous method as one call on a `HashPool`, so the
event loop only ever waits: ``averify_and_update`` verifies *and* makes the
upgraded hash inside that one call, which is the step Django 6.x still does on
the loop.
"""

from __future__ import annotations

import copy
import secrets
from typing import TYPE_CHECKING

from loopsafe import _waiting, profiles
from loopsafe._default import default_pool
from loopsafe._fair import check_key, check_priority
from loopsafe._password_call import Route, hasher_cost, run_password_call
from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import (
    Hasher,
    MCFBCryptHasher,
    PHCArgon2Hasher,
    identify_hasher,
    verify_password,
)
from loopsafe.hashers._fields import check_encoded_type, check_password_type

if TYPE_CHECKING:
    from collections.abc import Iterable

    from loopsafe._fair import Key
    from loopsafe._pool import HashPool

__all__ = ["PasswordHash"]


class PasswordHash:
    """Hash and verify passwords in Django's formats, with async twins that never block.

    Modelled on pwdlib's ``PasswordHash``; the first hasher makes new hashes,
    the others only verify existing ones (and mark them for an update).

    Verification follows Django's ``verify_password``: an unknown algorithm, a
    malformed hash, an unusable (``!``-prefixed) hash or a ``None`` password
    verify as False after running the preferred hasher once, so that these
    cases take as long as a wrong password (Django ticket #20760). pwdlib
    raises ``UnknownHashError`` for an unknown hash instead.

    Args:
        hashers: The hashers, preferred first. The first must make hashes:
            the verify-only readers (`PHCArgon2Hasher`, `MCFBCryptHasher`)
            go after it.
        pool: The pool for the async methods; defaults to `default_pool()`,
            looked up at each call so `configure()` takes effect.

    The async methods take ``key=`` (the client the call is for, see
    `HashPool.run`) and ``priority=``; `for_client` returns a copy whose
    async methods pass a client's key by default (what
    ``loopsafe.starlette.get_password_hash`` hands each request).

    Raises:
        ValueError: If ``hashers`` is empty or its first hasher is verify-only.
        TypeError: If an element is not a `Hasher`.
    """

    def __init__(self, hashers: Iterable[Hasher], *, pool: HashPool | None = None) -> None:
        """Keep the hashers, preferred first."""
        self.hashers: tuple[Hasher, ...] = tuple(hashers)
        if not self.hashers:
            raise ValueError("PasswordHash needs at least one hasher")
        for hasher in self.hashers:
            if not isinstance(hasher, Hasher):
                raise TypeError(f"expected a loopsafe Hasher, not {type(hasher).__name__}")
        if self.hashers[0].verify_only:
            raise ValueError(
                f"the first hasher makes new hashes and {type(self.hashers[0]).__name__} "
                "only reads them: put a Django-format hasher such as Argon2Hasher first"
            )
        self._pool = pool
        self._key: Key = None
        self._priority = 0
        # Declared to the pool for `max_memory`: the most any configured hasher needs.
        self._memory = max(hasher.memory_per_hash() for hasher in self.hashers)

    def for_client(self, key: Key, *, priority: int = 0) -> PasswordHash:
        """Return a copy whose async methods pass ``key`` and ``priority`` to the pool.

        Same hashers, same pool; a ``key=`` given to a method still wins.

        Raises:
            TypeError: If ``key`` or ``priority`` has the wrong type.
            ValueError: If ``priority`` is out of range.
        """
        check_key(key)
        check_priority(priority)
        bound = copy.copy(self)
        bound._key = key  # noqa: SLF001 - a copy of this very class
        bound._priority = priority  # noqa: SLF001
        return bound

    def check_admission(
        self, *, key: Key = None, priority: int | None = None, count: bool = True
    ) -> None:
        """Raise `Overloaded` if the pool would refuse this client's call now.

        `HashPool.check_admission` with this hasher's key and priority: call it
        before a database query for the user, so a refused login costs neither.
        The refusal is counted like any other unless ``count=False``.
        """
        key, priority = self._route(key, priority)
        self.pool.check_admission(key=key, priority=priority, count=count)

    def _route(self, key: Key, priority: int | None) -> tuple[Key, int]:
        return (
            self._key if key is None else key,
            self._priority if priority is None else priority,
        )

    def _call_route(self, key: Key, priority: int | None) -> Route:
        """Key and priority (this hasher's unless given), memory and cost, for the pool."""
        key, priority = self._route(key, priority)
        # Until measured, the estimator itself: a cold pool runs it on a worker.
        return Route(key, priority, self._memory, hasher_cost(self.preferred))

    @classmethod
    def recommended(
        cls,
        *,
        pool: HashPool | None = None,
        profile: profiles.Profile = profiles.DEFAULT,
    ) -> PasswordHash:
        """Return Argon2id at ``profile``'s parameters, able to verify every other algorithm.

        Like pwdlib's ``PasswordHash.recommended()``, new hashes are Argon2id.
        Existing PBKDF2, bcrypt and scrypt hashes still verify and are
        upgraded by `verify_and_update`, and so do the bare strings that
        pwdlib and passlib store (``$argon2id$...``, ``$2b$...``): the
        readers `PHCArgon2Hasher` and `MCFBCryptHasher` come last, each when
        its library is installed.

        Raises:
            HasherNotAvailable: If argon2-cffi is not installed.
        """
        hashers = profile.hashers()
        argon2 = profile.hasher("argon2")
        argon2.check_available()  # fails early, with the install hint
        others = []
        for hasher in [*hashers, PHCArgon2Hasher(), MCFBCryptHasher()]:
            if hasher.algorithm == "argon2":
                continue
            try:
                hasher.check_available()
            except HasherNotAvailable:
                continue  # e.g. bcrypt not installed: those hashes verify as False
            others.append(hasher)
        return cls([argon2, *others], pool=pool)

    @property
    def preferred(self) -> Hasher:
        """The hasher that makes new hashes."""
        return self.hashers[0]

    @property
    def pool(self) -> HashPool:
        """The pool the async methods use."""
        return self._pool if self._pool is not None else default_pool()

    def __repr__(self) -> str:
        """Name the algorithms, preferred first."""
        names = ", ".join(repr(hasher) for hasher in self.hashers)
        return f"PasswordHash([{names}])"

    # -- synchronous: the work itself -----------------------------------------------

    def hash(self, password: str | bytes, *, salt: str | None = None) -> str:
        """Hash ``password`` with the preferred hasher and a fresh salt (or ``salt``).

        Raises:
            TypeError: If ``password`` is not str or bytes.
        """
        check_password_type(password)
        if salt is None:
            return self.preferred.hash(password)
        return self.preferred.encode(password, salt)

    def verify(self, password: str | bytes | None, hash: str | None) -> bool:  # noqa: A002 - pwdlib's name
        """Return whether ``password`` matches ``hash``; never raises for a malformed hash.

        Raises:
            TypeError: If ``password`` is not str, bytes or None, or ``hash``
                is not str or None.
        """
        check_password_type(password, allow_none=True)
        check_encoded_type(hash, allow_none=True)
        ok, _ = verify_password(self.hashers, password, hash)
        return ok

    def verify_and_update(
        self,
        password: str | bytes | None,
        hash: str | None,  # noqa: A002 - pwdlib's name
    ) -> tuple[bool, str | None]:
        """Verify, and if the hash is outdated make its replacement in the same step.

        Returns:
            ``(ok, new_hash)``: ``new_hash`` is a fresh hash from the preferred
            hasher when ``ok`` and the old one used another algorithm or other
            parameters; otherwise None. Store it in place of the old one.
        """
        check_password_type(password, allow_none=True)
        check_encoded_type(hash, allow_none=True)
        ok, must_update = verify_password(self.hashers, password, hash)
        if ok and must_update and password is not None:
            return True, self.preferred.hash(password)
        return ok, None

    def identify(self, hash: str) -> Hasher:  # noqa: A002 - pwdlib's name
        """Return the configured hasher that reads ``hash``, or say why none does.

        `verify` answers False for a hash no configured hasher reads, as Django
        does; this is how to ask why (a migration script, a management check).
        The first time such a hash is verified, the reason is also logged on
        the ``loopsafe.hashers`` logger.

        Raises:
            TypeError: If ``hash`` is not a str.
            UnknownAlgorithm: If no configured hasher reads it. The message
                names the missing one when it is a format loopsafe knows
                ("add PHCArgon2Hasher()"), and never quotes the hash.
        """
        check_encoded_type(hash)
        return identify_hasher(self.hashers, hash)

    def verify_dummy(self) -> bool:
        """Spend one preferred-hasher hash and return False.

        Call it when the user does not exist, so that answer takes as long as
        a wrong password (Django ticket #20760).
        """
        self.preferred.hash(secrets.token_urlsafe(30))
        return False

    def estimate_cost(self) -> float | None:
        """What one hash with the preferred hasher costs here (seconds), measured once.

        A cheap scaled-down hash (`Hasher.estimated_seconds`, a few
        milliseconds). No longer needed at start-up: the async methods hand
        the pool this measurement to run on a worker thread when it is cold,
        so a fresh pool refuses a burst the way a warm one does. On an event
        loop's thread this never measures (it would block the loop): it
        returns the estimate if one was measured already, else None.
        """
        if _waiting.on_event_loop():
            return self.preferred.cached_estimate()
        try:
            return self.preferred.estimated_seconds()
        except HasherNotAvailable:
            return None  # said where it matters: at the first real hash

    # -- asynchronous twins: the same work, on the pool ---------------------------

    async def ahash(
        self,
        password: str | bytes,
        *,
        salt: str | None = None,
        key: Key = None,
        priority: int | None = None,
        timeout: float | None = None,
    ) -> str:
        """`hash` on the pool. Raises `Overloaded` or `TimeoutError` as `HashPool.run` does."""
        check_password_type(password)
        route = self._call_route(key, priority)
        if salt is None:
            return await run_password_call(
                self.pool, route, self.preferred.hash, password, timeout=timeout
            )
        return await run_password_call(
            self.pool, route, self.preferred.encode, password, salt, timeout=timeout
        )

    async def averify(
        self,
        password: str | bytes | None,
        hash: str | None,  # noqa: A002 - pwdlib's name
        *,
        key: Key = None,
        priority: int | None = None,
        timeout: float | None = None,
    ) -> bool:
        """`verify` on the pool. Raises `Overloaded` or `TimeoutError` as `HashPool.run` does."""
        check_password_type(password, allow_none=True)
        check_encoded_type(hash, allow_none=True)
        route = self._call_route(key, priority)
        return await run_password_call(
            self.pool, route, self.verify, password, hash, timeout=timeout
        )

    async def averify_and_update(
        self,
        password: str | bytes | None,
        hash: str | None,  # noqa: A002 - pwdlib's name
        *,
        key: Key = None,
        priority: int | None = None,
        timeout: float | None = None,
    ) -> tuple[bool, str | None]:
        """`verify_and_update` on the pool, the upgraded hash included, as one call."""
        check_password_type(password, allow_none=True)
        check_encoded_type(hash, allow_none=True)
        route = self._call_route(key, priority)
        return await run_password_call(
            self.pool, route, self.verify_and_update, password, hash, timeout=timeout
        )

    async def averify_dummy(
        self, *, key: Key = None, priority: int | None = None, timeout: float | None = None
    ) -> bool:
        """`verify_dummy` on the pool: the unknown-user path, off the loop."""
        route = self._call_route(key, priority)
        return await run_password_call(self.pool, route, self.verify_dummy, timeout=timeout)
