"""fastapi-users: a ``UserManager`` whose every hash and verification runs on the loopsafe pool.

fastapi-users' ``BaseUserManager`` calls its synchronous ``PasswordHelper``
(pwdlib's Argon2) inside ``async def``: each login, registration, password
change, forgotten-password token, reset and OAuth sign-up runs Argon2 on the
event loop. Its ``PasswordHelperProtocol`` is synchronous, so the fix lives
here, in two pieces::

    from fastapi_users import UUIDIDMixin
    from loopsafe.fastapi_users import PasswordHelper, PoolPasswordManagerMixin

    password_helper = PasswordHelper()  # built at import: a missing argon2-cffi fails here

    class UserManager(UUIDIDMixin, PoolPasswordManagerMixin[User, uuid.UUID]):
        reset_password_token_secret = SECRET
        verification_token_secret = SECRET

    async def get_user_manager(request: Request, user_db=Depends(get_user_db)):
        # the client's key: loopsafe.starlette.request_key (lifespan's client_key)
        yield UserManager(user_db, password_helper.for_client(request_key(request)))

- `PoolPasswordManagerMixin` is a ``BaseUserManager`` whose ``authenticate``,
  ``create``, ``_update`` (password changes), ``forgot_password``,
  ``reset_password`` and ``oauth_callback`` do what fastapi-users' do, step
  for step, except that each hash and verification is one call on the pool:
  the unknown-user dummy hash (Django ticket #20760) included, and the rehash
  on login made inside the same call as the verification. A full pool raises
  `loopsafe.Overloaded`, which ``loopsafe.starlette.EXCEPTION_HANDLERS`` turns
  into HTTP 503 with ``Retry-After``: the login is not failed, nothing is saved.
- `PasswordHelper` keeps fastapi-users' synchronous ``PasswordHelperProtocol``
  (``hash``, ``verify_and_update``, ``generate``) on a `loopsafe.PasswordHash`,
  for code that calls it directly, and adds the async twins the mixin awaits.
  New hashes are Django-format Argon2id (``argon2$argon2id$...``, Django 6.1's
  costs); the bare ``$argon2id$...`` and ``$2b$...`` strings fastapi-users and
  pwdlib stored verify and are replaced at each user's next login.
- `PasswordHelper.for_client` returns a copy whose async twins pass a
  client's key to the pool, so that under a flood each client gets a fair
  share of it. ``loopsafe.starlette.request_key(request)`` is the key the
  app's ``lifespan(client_key=...)`` picks, by default ``request.client.host``
  (the peer address, never ``X-Forwarded-For``, which any client can send:
  see docs/fairness.md).

Any other helper (fastapi-users' own pwdlib one, a custom one) works too: the
mixin runs its synchronous methods on `loopsafe.default_pool()`, without a
client key.
"""

from __future__ import annotations

import copy
import secrets
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

try:
    import jwt
    from fastapi_users import exceptions, models
    from fastapi_users.jwt import decode_jwt, generate_jwt
    from fastapi_users.manager import BaseUserManager
    from fastapi_users.password import PasswordHelperProtocol
except ImportError as exc:  # pragma: no cover - exercised by a test that hides fastapi_users
    raise ImportError(
        "loopsafe.fastapi_users needs fastapi-users: pip install 'loopsafe[fastapi-users]'"
    ) from exc

from loopsafe._api import PasswordHash
from loopsafe._default import default_pool
from loopsafe._fair import check_key, check_priority
from loopsafe._password_call import Route, hashers_route, run_password_call

if TYPE_CHECKING:
    from fastapi import Request
    from fastapi.security import OAuth2PasswordRequestForm
    from fastapi_users import schemas
    from fastapi_users.db import BaseUserDatabase

    from loopsafe._fair import Key
    from loopsafe._pool import HashPool
    from loopsafe.devices import DeviceCookies

__all__ = ["AsyncPasswordHelper", "PasswordHelper", "PoolPasswordManagerMixin"]


@runtime_checkable
class AsyncPasswordHelper(Protocol):
    """A helper that hashes off the loop itself: `PasswordHelper`, or one of your own."""

    async def ahash(self, password: str) -> str:
        """Return a new hash of ``password``, made off the event loop."""

    async def averify_and_update(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        """Return ``(ok, new_hash_or_None)``, computed off the event loop."""


class PasswordHelper(PasswordHelperProtocol):
    """fastapi-users' ``PasswordHelperProtocol`` on a `loopsafe.PasswordHash`, with async twins.

    The synchronous methods do the work inline, as fastapi-users' own helper
    does; `ahash` and `averify_and_update` run those same methods as one call
    on the `PasswordHash`'s pool (so a subclass that overrides ``hash`` or
    ``verify_and_update`` is honoured by both).

    `for_client` returns a copy bound to a client's key (build one helper at
    import, bind a copy per request).

    Args:
        password_hash: Default `PasswordHash.recommended()`: Argon2id at
            Django 6.1's costs, reading every Django format and the bare
            pwdlib/passlib/argon2-cffi/bcrypt strings, which it upgrades.

    Raises:
        TypeError: If ``password_hash`` is not a loopsafe `PasswordHash`.
        loopsafe.HasherNotAvailable: If argon2-cffi is missing (default only).
    """

    def __init__(self, password_hash: PasswordHash | None = None) -> None:
        """Keep the `PasswordHash`; build the recommended one now, so a problem shows at once."""
        if password_hash is None:
            password_hash = PasswordHash.recommended()
        elif not isinstance(password_hash, PasswordHash):
            raise TypeError(
                f"password_hash must be a loopsafe PasswordHash, not {type(password_hash).__name__}"
            )
        self.password_hash = password_hash
        self._key: Key = None
        self._priority = 0

    def for_client(self, key: Key, *, priority: int = 0) -> PasswordHelper:
        """Return a copy whose `ahash` and `averify_and_update` pass ``key`` and ``priority``.

        Same `PasswordHash` (its ``for_client`` copy), same pool; the
        synchronous methods are unchanged. ``key=None`` is the shared key.

        Raises:
            TypeError: If ``key`` or ``priority`` has the wrong type (the
                message names the type, never the value).
            ValueError: If ``priority`` is out of range.
        """
        check_key(key)
        check_priority(priority)
        bound = copy.copy(self)
        bound.password_hash = self.password_hash.for_client(key, priority=priority)
        bound._key = key  # noqa: SLF001 - a copy of this very class
        bound._priority = priority  # noqa: SLF001
        return bound

    def for_login(
        self, key: Key, username: object, token: object, devices: DeviceCookies
    ) -> PasswordHelper:
        """`for_client`, unless ``token`` is a valid device cookie for ``username``.

        Then the copy passes the device's own key and a higher priority
        (`loopsafe.devices`), so a returning user's login goes ahead of an
        anonymous flood. Set the cookie in ``on_after_login`` with
        ``devices.set_cookie(response, user.email)``.
        """
        admission = devices.admission(token, username, key)
        return self.for_client(admission.key, priority=admission.priority)

    def __repr__(self) -> str:
        """Show the `PasswordHash`."""
        return f"PasswordHelper({self.password_hash!r})"

    @property
    def pool(self) -> HashPool:
        """The pool the async twins use (the `PasswordHash`'s)."""
        return self.password_hash.pool

    def hash(self, password: str) -> str:
        """Hash ``password`` inline with the preferred hasher (fastapi-users' sync protocol)."""
        return self.password_hash.hash(password)

    def verify_and_update(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        """Verify inline and make the upgraded hash when the stored one is outdated."""
        return self.password_hash.verify_and_update(plain_password, hashed_password)

    def generate(self) -> str:
        """Return a random password, as fastapi-users does (``secrets.token_urlsafe()``)."""
        return secrets.token_urlsafe()

    async def ahash(self, password: str) -> str:
        """`hash` on the pool. Raises `loopsafe.Overloaded` when the pool refuses.

        Raises:
            TypeError: If ``password`` is not a str, before anything is queued.
        """
        _check_str(password, "password")
        return await run_password_call(self.pool, self._call_route(), self.hash, password)

    async def averify_and_update(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        """`verify_and_update` on the pool, the rehash included, as one call.

        Raises:
            TypeError: If an argument is not a str, before anything is queued.
        """
        _check_str(plain_password, "plain_password")
        _check_str(hashed_password, "hashed_password")
        return await run_password_call(
            self.pool, self._call_route(), self.verify_and_update, plain_password, hashed_password
        )

    def _call_route(self) -> Route:
        """The client's key and priority, and the `PasswordHash`'s memory and cost."""
        return hashers_route(self.password_hash.hashers, key=self._key, priority=self._priority)


def _check_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")


#: A helper of another kind says nothing about its hashes: shared key, no
#: declared memory, no cost estimate (the pool learns it from the first calls).
_UNKNOWN_HELPER: Final = Route(key=None, priority=0, memory=0, cost=None)


@cache
def _default_password_helper() -> PasswordHelper:
    """Return the process-wide `PasswordHelper()` the mixin uses when given none."""
    return PasswordHelper()


class PoolPasswordManagerMixin(BaseUserManager[models.UP, models.ID]):
    """A fastapi-users ``BaseUserManager`` that hashes and verifies on the loopsafe pool.

    Use it in place of ``BaseUserManager`` in your ``UserManager``'s bases,
    after ``UUIDIDMixin``/``IntegerIDMixin`` as fastapi-users' docs put them
    (a class that puts an ID mixin after it raises `TypeError` when it is
    defined: ``BaseUserManager.parse_id`` would hide the mixin's). Each method
    below is fastapi-users' own (15.x), step for step, with every call of the
    password helper awaited off the loop:

    - ``authenticate``: an unknown e-mail still hashes the given password once,
      so it takes as long as a wrong password; a right password against an
      outdated hash gets the new hash from the same pool call, saved with
      ``user_db.update`` as fastapi-users does.
    - ``create``, ``_update`` (so ``update`` and ``reset_password``),
      ``forgot_password`` (the token's fingerprint hash), ``reset_password``
      (the fingerprint check) and ``oauth_callback`` (a new OAuth user's random
      password).
    - ``validate_password`` and the ``on_after_*`` hooks are untouched.

    The helper: `PasswordHelper` (or any `AsyncPasswordHelper`) is awaited;
    any other ``PasswordHelperProtocol`` runs its sync methods on
    `loopsafe.default_pool()`. Given none, the manager uses one shared
    `PasswordHelper()`.

    Raises:
        loopsafe.Overloaded: From any of those methods when the pool refuses
            the call; nothing was hashed, nothing saved.
        TypeError: At construction, if ``password_helper`` lacks ``hash``,
            ``verify_and_update`` or ``generate``.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Refuse bases in an order that hides an ID mixin's ``parse_id`` (fails at import)."""
        super().__init_subclass__(**kwargs)
        mro = cls.__mro__
        for later in mro[mro.index(BaseUserManager) + 1 :]:
            if "parse_id" in vars(later):
                raise TypeError(
                    f"{cls.__name__}: put {later.__name__} before PoolPasswordManagerMixin in "
                    f"its bases, or BaseUserManager.parse_id hides {later.__name__}.parse_id"
                )

    def __init__(
        self,
        user_db: BaseUserDatabase[models.UP, models.ID],
        password_helper: PasswordHelperProtocol | None = None,
    ) -> None:
        """Keep the database adapter and the helper (default: the shared `PasswordHelper`)."""
        if password_helper is None:
            password_helper = _default_password_helper()
        missing = [
            name
            for name in ("hash", "verify_and_update", "generate")
            if not callable(getattr(password_helper, name, None))
        ]
        if missing:
            raise TypeError(
                f"password_helper {type(password_helper).__name__} has no {', '.join(missing)}: "
                "pass a loopsafe.fastapi_users.PasswordHelper"
            )
        super().__init__(user_db, password_helper)

    # -- the two awaitable primitives every path uses -----------------------------

    async def ahash_password(self, password: str) -> str:
        """Hash ``password`` with the manager's helper, off the loop."""
        helper = self.password_helper
        if isinstance(helper, AsyncPasswordHelper):
            return await helper.ahash(password)
        return await run_password_call(default_pool(), _UNKNOWN_HELPER, helper.hash, password)

    async def averify_and_update_password(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        """The helper's ``verify_and_update``, off the loop (the rehash in the same call)."""
        helper = self.password_helper
        if isinstance(helper, AsyncPasswordHelper):
            return await helper.averify_and_update(plain_password, hashed_password)
        return await run_password_call(
            default_pool(),
            _UNKNOWN_HELPER,
            helper.verify_and_update,
            plain_password,
            hashed_password,
        )

    # -- fastapi-users' methods, with the hashing awaited --------------------------

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> models.UP | None:
        """Return the user for this e-mail and password, or None; upgrade an outdated hash."""
        try:
            user = await self.get_by_email(credentials.username)
        except exceptions.UserNotExists:
            # Hash once anyway, so an unknown e-mail takes as long as a wrong
            # password (Django ticket #20760), as fastapi-users does.
            await self.ahash_password(credentials.password)
            return None

        verified, updated_password_hash = await self.averify_and_update_password(
            credentials.password, user.hashed_password
        )
        if not verified:
            return None
        if updated_password_hash is not None:
            await self.user_db.update(user, {"hashed_password": updated_password_hash})
        return user

    async def create(
        self,
        user_create: schemas.UC,
        safe: bool = False,  # noqa: FBT001, FBT002 - fastapi-users' signature
        request: Request | None = None,
    ) -> models.UP:
        """Create a user (fastapi-users' ``create``), hashing the password on the pool."""
        await self.validate_password(user_create.password, user_create)

        existing_user = await self.user_db.get_by_email(user_create.email)
        if existing_user is not None:
            raise exceptions.UserAlreadyExists

        # fastapi-users leaves these two untyped.
        user_dict: dict[str, Any] = (
            user_create.create_update_dict()  # type: ignore[no-untyped-call]
            if safe
            else user_create.create_update_dict_superuser()  # type: ignore[no-untyped-call]
        )
        password = user_dict.pop("password")
        user_dict["hashed_password"] = await self.ahash_password(password)

        created_user = await self.user_db.create(user_dict)
        await self.on_after_register(created_user, request)
        return created_user

    async def forgot_password(self, user: models.UP, request: Request | None = None) -> None:
        """Start a reset (fastapi-users' ``forgot_password``), the fingerprint hashed off-loop."""
        if not user.is_active:
            raise exceptions.UserInactive
        token_data = {
            "sub": str(user.id),
            "password_fgpt": await self.ahash_password(user.hashed_password),
            "aud": self.reset_password_token_audience,
        }
        token = generate_jwt(
            token_data,
            self.reset_password_token_secret,
            self.reset_password_token_lifetime_seconds,
        )
        await self.on_after_forgot_password(user, token, request)

    async def reset_password(
        self, token: str, password: str, request: Request | None = None
    ) -> models.UP:
        """Reset a password (fastapi-users' ``reset_password``): both hash steps on the pool."""
        try:
            data = decode_jwt(
                token, self.reset_password_token_secret, [self.reset_password_token_audience]
            )
        except jwt.PyJWTError:
            raise exceptions.InvalidResetPasswordToken from None

        try:
            user_id = data["sub"]
            password_fingerprint = data["password_fgpt"]
        except KeyError:
            raise exceptions.InvalidResetPasswordToken from None

        try:
            parsed_id = self.parse_id(user_id)
        except exceptions.InvalidID:
            raise exceptions.InvalidResetPasswordToken from None

        user = await self.get(parsed_id)

        # fastapi-users' order: the stored hash is the "password", the token's
        # fingerprint the "hash" it must match.
        valid_password_fingerprint, _ = await self.averify_and_update_password(
            user.hashed_password, password_fingerprint
        )
        if not valid_password_fingerprint:
            raise exceptions.InvalidResetPasswordToken

        if not user.is_active:
            raise exceptions.UserInactive

        updated_user = await self._update(user, {"password": password})
        await self.on_after_reset_password(user, request)
        return updated_user

    async def oauth_callback(  # noqa: PLR0917 - fastapi-users' signature
        self: PoolPasswordManagerMixin[models.UOAP, models.ID],
        oauth_name: str,
        access_token: str,
        account_id: str,
        account_email: str,
        expires_at: int | None = None,
        refresh_token: str | None = None,
        request: Request | None = None,
        *,
        associate_by_email: bool = False,
        is_verified_by_default: bool = False,
    ) -> models.UOAP:
        """fastapi-users' ``oauth_callback``: a new user's random password is hashed on the pool."""
        oauth_account_dict = {
            "oauth_name": oauth_name,
            "access_token": access_token,
            "account_id": account_id,
            "account_email": account_email,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
        }

        try:
            user = await self.get_by_oauth_account(oauth_name, account_id)
        except exceptions.UserNotExists:
            try:
                user = await self.get_by_email(account_email)
                if not associate_by_email:
                    raise exceptions.UserAlreadyExists from None
                user = await self.user_db.add_oauth_account(user, oauth_account_dict)
            except exceptions.UserNotExists:
                password = self.password_helper.generate()
                user_dict = {
                    "email": account_email,
                    "hashed_password": await self.ahash_password(password),
                    "is_verified": is_verified_by_default,
                }
                user = await self.user_db.create(user_dict)
                user = await self.user_db.add_oauth_account(user, oauth_account_dict)
                await self.on_after_register(user, request)
        else:
            for existing_oauth_account in user.oauth_accounts:
                if (
                    existing_oauth_account.account_id == account_id
                    and existing_oauth_account.oauth_name == oauth_name
                ):
                    user = await self.user_db.update_oauth_account(
                        user, existing_oauth_account, oauth_account_dict
                    )
        return user

    async def _update(self, user: models.UP, update_dict: dict[str, Any]) -> models.UP:
        """fastapi-users' ``_update``: a new password is validated, then hashed on the pool."""
        validated_update_dict: dict[str, Any] = {}
        for field, value in update_dict.items():
            if field == "email" and value != user.email:
                try:
                    await self.get_by_email(value)
                    raise exceptions.UserAlreadyExists
                except exceptions.UserNotExists:
                    validated_update_dict["email"] = value
                    validated_update_dict["is_verified"] = False
            elif field == "password" and value is not None:
                await self.validate_password(value, user)
                validated_update_dict["hashed_password"] = await self.ahash_password(value)
            else:
                validated_update_dict[field] = value
        return await self.user_db.update(user, validated_update_dict)
