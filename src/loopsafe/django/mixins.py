"""`AsyncPasswordMixin`: non-blocking async password methods for custom user models.

Put it before Django's base class::

    class User(AsyncPasswordMixin, AbstractUser):
        ...

This module does not import Django's models, so it can be imported from a
``models.py`` at any point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loopsafe.django._passwords import acheck_user_password, aset_password

__all__ = ["AsyncPasswordMixin"]


class AsyncPasswordMixin:
    """Async password methods for a Django user model that hash on the loopsafe pool.

    ``acheck_password`` verifies and, when the password is right but its hash
    outdated, makes the new hash in the same pool call; only the save runs on
    the event loop. ``aset_password`` is the async twin of ``set_password``
    (it does not save, like ``set_password``). Both raise `loopsafe.Overloaded`
    when the pool refuses the call.

    Works on Django 4.2 too, which has no async password methods of its own.
    """

    password: str
    _password: str | None

    if TYPE_CHECKING:
        # Django's Model provides it; a definition here would shadow it.
        async def asave(self, *, update_fields: list[str]) -> None:
            """Save the given fields (Django's ``Model.asave``)."""

    async def acheck_password(self, raw_password: str | None) -> bool:
        """Return whether ``raw_password`` is right, saving an upgraded hash when needed."""
        return await acheck_user_password(self, raw_password)

    async def aset_password(self, raw_password: str | None) -> None:
        """Set the password (None: unusable) with the hash made on the pool; does not save."""
        await aset_password(self, raw_password)
