"""Per-account and per-client login throttling before any hash, on the ``limits`` library.

Admission control (`loopsafe.Overloaded`, HTTP 503) keeps the server answering
under a storm, but it does not stop one account being guessed at slowly from
many addresses. `LoginThrottle` does: call it before checking a password, and
an attempt over budget raises `loopsafe.Throttled` (HTTP 429 with
``Retry-After``) without a hash::

    from loopsafe.throttle import LoginThrottle

    throttle = LoginThrottle(per_account="10/15 minutes", per_client="60/minute")

    async def login(username, password, client):
        await throttle.acheck(username, client)  # Throttled: answer 429
        user = await users.verify(username, password)  # the hash, on the pool
        if user is not None:
            await throttle.areset(username)  # a success clears the account's window
        return user

Budgets are *moving windows* (``limits``' ``MovingWindowRateLimiter``): N
attempts in any period of the given length, counted atomically. The storage
is in memory by default (one process); give ``storage="redis://host:6379/0"``
when several processes or hosts must share one budget (``loopsafe[redis]``):
4 workers then allow N attempts per account in total, not N each.

Every attempt counts, right or wrong: the check must come before the hash,
when the answer is not known yet (counting only failures would need the hash
first, or let concurrent attempts race past the limit). `areset` after a
success gives the owner a fresh window. An attempt presenting a valid trusted
device cookie (`loopsafe.devices`) passes ``trusted=True``: it is counted
against its own per-account budget (``per_device``), so a flood of guesses
cannot lock the owner's own devices out (OWASP's device cookies).

Usernames and client keys never reach the storage in clear: they are hashed
(BLAKE2b keyed with ``prefix``) into the storage keys, and no message or log
line names them.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Final

from loopsafe.exceptions import Throttled

try:
    import limits
    import limits.aio.strategies
    import limits.strategies
    from limits.storage import storage_from_string
except ImportError as exc:  # pragma: no cover - exercised by a test that hides limits
    raise ImportError(
        "loopsafe.throttle needs the limits library: pip install 'loopsafe[throttle]' "
        "(or 'loopsafe[redis]' to share budgets through Redis)"
    ) from exc

if TYPE_CHECKING:
    from loopsafe._fair import Key

__all__ = ["DEFAULT_PER_ACCOUNT", "DEFAULT_PER_CLIENT", "DEFAULT_PER_DEVICE", "LoginThrottle"]

#: Attempts per account (username) from untrusted clients: OWASP's order of magnitude.
DEFAULT_PER_ACCOUNT: Final = "10/15 minutes"
#: Attempts per client key (address).
DEFAULT_PER_CLIENT: Final = "60/minute"
#: Attempts per account from its trusted devices together.
DEFAULT_PER_DEVICE: Final = "30/15 minutes"

_SCOPES: Final = ("client", "account", "device")


def _item(spec: str | None, name: str) -> limits.RateLimitItem | None:
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise TypeError(f"LoginThrottle({name}=...) takes a string such as '10/minute' or None")
    try:
        return limits.parse(spec)
    except ValueError:
        raise ValueError(
            f"LoginThrottle({name}={spec!r}) is not a rate such as '10/minute' or '5/15 minutes'"
        ) from None


class LoginThrottle:
    """Moving-window budgets of login attempts per account, per client and per trusted device.

    Args:
        per_account: Attempts per username from untrusted clients, e.g.
            ``"10/15 minutes"``; None: no account budget.
        per_client: Attempts per client key (an address); None: none.
        per_device: Attempts per username from its trusted devices; None: none.
        storage: A ``limits`` storage URI: ``"memory://"`` (this process),
            ``"redis://host:port/db"`` (shared; needs ``loopsafe[redis]``).
        prefix: Namespace of the storage keys, and the key of their hashing.
        **storage_options: Passed to the ``limits`` storage.

    Raises:
        TypeError, ValueError: A budget is not a rate string.
    """

    def __init__(
        self,
        per_account: str | None = DEFAULT_PER_ACCOUNT,
        per_client: str | None = DEFAULT_PER_CLIENT,
        per_device: str | None = DEFAULT_PER_DEVICE,
        *,
        storage: str = "memory://",
        prefix: str = "loopsafe-login",
        **storage_options: float | str | bool,
    ) -> None:
        """Parse the budgets; storages connect on first use."""
        self._items = {
            "account": _item(per_account, "per_account"),
            "client": _item(per_client, "per_client"),
            "device": _item(per_device, "per_device"),
        }
        if not isinstance(storage, str):
            raise TypeError("LoginThrottle(storage=...) takes a limits URI string")
        if "://" not in storage:
            raise ValueError("LoginThrottle(storage=...) takes a limits URI such as 'memory://'")
        self._uri = storage
        self._options = storage_options
        self._salt = prefix.encode()
        self._prefix = prefix
        self._sync: limits.strategies.MovingWindowRateLimiter | None = None
        self._async: limits.aio.strategies.MovingWindowRateLimiter | None = None

    def __repr__(self) -> str:
        """Show the budgets and the storage scheme (never a host or credential)."""
        budgets = ", ".join(f"{scope}={item}" for scope, item in self._items.items() if item)
        return f"LoginThrottle({budgets}, storage={self._uri.split('://', 1)[0]}://...)"

    @property
    def shared(self) -> bool:
        """Whether the budgets live outside this process (not ``memory://``)."""
        return not self._uri.startswith("memory://")

    def _limiter(self) -> limits.strategies.MovingWindowRateLimiter:
        if self._sync is None:
            storage = storage_from_string(self._uri, **self._options)
            self._sync = limits.strategies.MovingWindowRateLimiter(storage)
        return self._sync

    def _alimiter(self) -> limits.aio.strategies.MovingWindowRateLimiter | None:
        """The async limiter; None for ``memory://``, whose sync storage never waits."""
        if not self.shared:
            return None
        if self._async is None:
            options = dict(self._options)
            if self._uri.startswith(("redis://", "rediss://", "redis+")):
                options.setdefault("implementation", "redispy")
            storage = storage_from_string(f"async+{self._uri}", **options)
            self._async = limits.aio.strategies.MovingWindowRateLimiter(storage)
        return self._async

    def _id(self, scope: str, value: object) -> str:
        if value is None:
            return ""
        digest = hashlib.blake2b(repr(value).encode(), digest_size=16, key=self._salt[:64])
        return f"{self._prefix}:{scope}:{digest.hexdigest()}"

    def _plan(
        self, username: str | None, client: Key, *, trusted: bool
    ) -> list[tuple[str, limits.RateLimitItem, str]]:
        if username is not None and not isinstance(username, str):
            raise TypeError(f"username must be a str or None, not {type(username).__name__}")
        wanted = {
            "client": None if trusted else client,
            "account": None if trusted else username,
            "device": username if trusted else None,
        }
        plan = []
        for scope in _SCOPES:
            item = self._items[scope]
            identifier = self._id(scope, wanted[scope])
            if item is not None and identifier:
                plan.append((scope, item, identifier))
        return plan

    def check(self, username: str | None, client: Key = None, *, trusted: bool = False) -> None:
        """Count one attempt; raise `loopsafe.Throttled` if a budget is spent (no hash yet).

        Untrusted attempts count against the client's and the account's
        budgets, in that order (a refused client spends nothing of the
        account's); a trusted device's against the account's device budget only.

        Args:
            username: The account tried (None: no account budget applies).
            client: The client's key, e.g. its address (None: no client budget).
            trusted: Whether the attempt presents a valid device cookie for
                ``username`` (`loopsafe.devices`).

        Raises:
            Throttled: A budget is spent; ``retry_after`` says for how long.
            TypeError: ``username`` is not a str or None.
        """
        limiter = self._limiter()
        for scope, item, identifier in self._plan(username, client, trusted=trusted):
            if not limiter.hit(item, identifier):
                reset = limiter.get_window_stats(item, identifier).reset_time
                raise Throttled(max(0.0, reset - time.time()), scope=scope)

    async def acheck(
        self, username: str | None, client: Key = None, *, trusted: bool = False
    ) -> None:
        """`check` for async code: a shared storage is awaited, never waited on by the loop."""
        limiter = self._alimiter()
        if limiter is None:
            self.check(username, client, trusted=trusted)
            return
        for scope, item, identifier in self._plan(username, client, trusted=trusted):
            if not await limiter.hit(item, identifier):
                reset = (await limiter.get_window_stats(item, identifier)).reset_time
                raise Throttled(max(0.0, reset - time.time()), scope=scope)

    def reset(self, username: str) -> None:
        """Clear ``username``'s untrusted-attempt window (call after a successful login)."""
        item = self._items["account"]
        if item is not None:
            self._limiter().clear(item, self._id("account", username))

    async def areset(self, username: str) -> None:
        """`reset` for async code."""
        item = self._items["account"]
        limiter = self._alimiter()
        if item is None:
            return
        if limiter is None:
            self.reset(username)
        else:
            await limiter.clear(item, self._id("account", username))

    def remaining(self, username: str | None, client: Key = None, *, trusted: bool = False) -> int:
        """Return the attempts left before `check` refuses (the smallest of the budgets)."""
        limiter = self._limiter()
        left = [
            limiter.get_window_stats(item, identifier).remaining
            for _, item, identifier in self._plan(username, client, trusted=trusted)
        ]
        return min(left, default=2**31)
