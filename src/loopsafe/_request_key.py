"""How the web integrations pick a request's client key: one option, checked the same way.

Starlette's ``lifespan``, Litestar's ``LoopsafePlugin`` and aiohttp's ``setup``
take ``client_key``: a callable from the framework's request to a key
(`loopsafe._fair.Key`), or None for no keys. `check_client_key_option`
refuses anything else when the app is built; `key_of` calls it for a request
and refuses a bad key at the call. Both messages name a type, never a value:
keys are client addresses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from loopsafe._fair import check_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopsafe._fair import Key

__all__ = ["check_client_key_option", "key_of"]

R = TypeVar("R")


def check_client_key_option(client_key: object, where: str) -> None:
    """Raise `TypeError` unless ``client_key`` is a callable or None.

    ``where`` names the option in the message, e.g. ``"LoopsafePlugin(client_key=...)"``.
    """
    if client_key is not None and not callable(client_key):
        raise TypeError(
            f"{where} takes a callable (request -> key) or None, not {type(client_key).__name__}"
        )


def key_of(client_key: Callable[[R], object], request: R, where: str) -> Key:
    """Return ``client_key(request)``, checked.

    Raises:
        TypeError: If it returned something that cannot be a key; the message
            names its type, never its value.
    """
    key = client_key(request)
    try:
        check_key(key)
    except TypeError as exc:
        raise TypeError(f"{where} returned a bad key: {exc}") from None
    return key  # type: ignore[return-value] # checked just above
