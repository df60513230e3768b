"""`identify_hasher` and `verify_password`: Django's rules for picking a hasher and checking."""

from __future__ import annotations

import logging
import secrets
import threading
from typing import TYPE_CHECKING

from loopsafe.exceptions import UnknownAlgorithm

if TYPE_CHECKING:
    from collections.abc import Sequence

    from loopsafe.hashers._base import Hasher

from loopsafe.hashers._fields import (
    _DJANGO_ALGORITHMS,
    UNUSABLE_PASSWORD_PREFIX,
    check_encoded_type,
    check_password_type,
)
from loopsafe.hashers._readers import _READERS


def identify_hasher(hashers: Sequence[Hasher], encoded: str) -> Hasher:
    """Return the first hasher whose algorithm is the text before ``encoded``'s first ``$``.

    Django's rule, without its legacy unsalted MD5/SHA-1 guesses; a string with
    no ``$`` is no hash of any algorithm here. The readers of bare formats
    (`PHCArgon2Hasher`, `MCFBCryptHasher`), whose strings start with ``$``,
    match by their `Hasher.prefixes` instead (``$argon2id$``, ``$2b$``...), so
    ``bcrypt_sha256$$2b$...`` is still `BCryptSHA256Hasher`'s.

    Raises:
        TypeError: If ``encoded`` is not a str.
        UnknownAlgorithm: If no hasher matches. The message names the prefix
            only when it is an algorithm Django ships or a bare format's, so a
            plaintext password stored by mistake never reaches a log.
    """
    check_encoded_type(encoded)
    prefix, dollar, _ = encoded.partition("$")
    if dollar:
        for hasher in hashers:
            if encoded.startswith(hasher._leads()):  # noqa: SLF001 - this module's own class
                return hasher
    if dollar and prefix in _DJANGO_ALGORITHMS:
        raise UnknownAlgorithm(f"no configured hasher for algorithm {prefix!r}")
    for reader in _READERS:
        for lead in reader.prefixes:
            if encoded.startswith(lead):
                raise UnknownAlgorithm(
                    f"no configured hasher reads {lead!r} hashes; add {reader.__name__}()"
                )
    raise UnknownAlgorithm("the encoded string does not start with a known algorithm name")


def verify_password(
    hashers: Sequence[Hasher],
    password: str | bytes | None,
    encoded: str | None,
) -> tuple[bool, bool]:
    """Django 5.2's ``verify_password`` over ``hashers``, the first being the preferred one.

    A None password, a None or unusable (``!``-prefixed) hash, or one no hasher
    can read run the preferred hasher's ``hash`` once on a random string and
    return ``(False, False)``, so they take as long as a real check (Django
    ticket #20760). Otherwise ``must_update`` is whether the algorithm differs
    from the preferred one or the preferred hasher's ``must_update``; a wrong
    password against an outdated hash of the preferred algorithm also spends
    the missing work (``harden_runtime``).

    One departure: Django raises for a hash of a configured algorithm that its
    hasher cannot parse; here that is one more unreadable hash, ``(False, False)``.

    Returns:
        ``(is_correct, must_update)``.

    Raises:
        TypeError: If ``password`` is not str, bytes or None, or ``encoded`` is
            not str or None.
        ValueError: If ``hashers`` is empty or its first hasher is verify-only.
        HasherNotAvailable: If the hasher that must run needs a missing library.
    """
    check_password_type(password, allow_none=True)
    check_encoded_type(encoded, allow_none=True)
    if not hashers:
        raise ValueError("verify_password needs at least one hasher")
    preferred = hashers[0]
    if preferred.verify_only:
        raise ValueError(f"the first hasher makes hashes: {type(preferred).__name__} cannot")
    if password is None or encoded is None or encoded.startswith(UNUSABLE_PASSWORD_PREFIX):
        return _fake_runtime(preferred)
    try:
        hasher = identify_hasher(hashers, encoded)
    except UnknownAlgorithm as unknown:
        _report_unknown(unknown)
        return _fake_runtime(preferred)
    if not hasher.can_read(encoded):
        return _fake_runtime(preferred)
    hasher_changed = hasher.algorithm != preferred.algorithm
    must_update = hasher_changed or preferred.must_update(encoded)
    is_correct = hasher.verify(password, encoded)
    if not is_correct and not hasher_changed and must_update:
        hasher.harden_runtime(password, encoded)
    return is_correct, must_update


def _fake_runtime(preferred: Hasher) -> tuple[bool, bool]:
    # Django hashes get_random_string(40); token_urlsafe(30) is 40 characters.
    preferred.hash(secrets.token_urlsafe(30))
    return False, False


_log = logging.getLogger("loopsafe.hashers")
#: Messages already logged: each distinct hint once per process (its text never
#: quotes a hash, and there are only as many as the formats loopsafe knows).
_reported: set[str] = set()
_reported_lock = threading.Lock()


def _report_unknown(unknown: UnknownAlgorithm) -> None:
    """Log, once per distinct message, why a stored hash matched no configured hasher.

    `verify_password` answers False for such a hash, as Django does, so the
    hint in the message ("add PHCArgon2Hasher()") would otherwise never reach
    someone who migrated a table with an incomplete hasher list. The message
    names an algorithm only when it is one Django ships or a bare format's
    (`identify_hasher`), so no plaintext stored by mistake reaches the log.
    """
    message = str(unknown)
    with _reported_lock:
        if message in _reported:
            return
        _reported.add(message)
    _log.warning("a stored hash matched no configured hasher and verified as False: %s", message)
