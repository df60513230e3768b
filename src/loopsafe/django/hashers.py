"""Django hashers that read the bare hashes pwdlib, passlib, argon2-cffi and bcrypt store.

A Django site that takes over a FastAPI/fastapi-users/passlib user table finds
``$argon2id$v=19$m=65536,t=3,p=4$...`` and ``$2b$12$...`` in its password
column: strings with no ``algorithm$`` prefix, which Django's
``check_password`` cannot read. Add one of these to ``PASSWORD_HASHERS``,
*after* the hasher that makes new hashes::

    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",  # makes new hashes
        ...,
        "loopsafe.django.hashers.BareHashPasswordHasher",  # reads $argon2id$..., $2b$...
    ]

Each user's next correct login then verifies the old hash and replaces it with
the first hasher's (Django's ``check_password`` setter, ``acheck_password``,
``aauthenticate``, loopsafe's a-functions and ``PATCH_AUTH`` all do), so the
table migrates itself.

How Django finds them. Django's ``identify_hasher`` takes the text before a
hash's first ``$`` as its algorithm: for a bare hash, that is the empty
string. These hashers' ``algorithm`` is that empty string, as a ``str``
subclass that is truthy, because ``get_hashers`` refuses a hasher whose
algorithm is falsy. So Django's own ``identify_hasher``, ``check_password``,
``acheck_password`` and the admin's password widget reach them with no patch;
``tests/django/test_bare_hashers.py`` pins that behaviour of Django. As Django
keys hashers by algorithm, only one of the classes below can be configured:

- `BareHashPasswordHasher` reads both Argon2 PHC strings (``$argon2id$``,
  ``$argon2i$``, ``$argon2d$``) and bcrypt's (``$2b$``, ``$2a$``, ``$2y$``);
- `PHCArgon2PasswordHasher` reads the Argon2 ones only, `MCFBCryptPasswordHasher`
  the bcrypt ones only.

The work is loopsafe's `PHCArgon2Hasher` and `MCFBCryptHasher` (the readers
`loopsafe.PasswordHash` uses), with their bounds: a hash asking for more than
`Argon2Hasher`'s memory or time, or a bcrypt cost over 16, verifies as False
without being run. Verify-only: ``encode`` and ``salt`` raise, and every hash
read must be updated. A string that starts with ``$`` but is neither (say
``$6$...`` from ``crypt``) verifies as False after one hash of the preferred
hasher, as Django does for an unknown algorithm (ticket #20760).

Mistakes are caught when Django starts (by the ``loopsafe.django`` app, see
`check_password_hashers`), not at the first login: one of these first in
``PASSWORD_HASHERS``, two of them, or a missing argon2-cffi/bcrypt raise
``ImproperlyConfigured``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.contrib.auth import hashers as django_hashers
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import get_random_string
from django.utils.module_loading import import_string
from django.utils.translation import gettext_noop as _

from loopsafe.exceptions import HasherNotAvailable
from loopsafe.hashers import MCFBCryptHasher, PHCArgon2Hasher

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    from loopsafe.hashers import Hasher

__all__ = [
    "BARE_ALGORITHM",
    "BareHashPasswordHasher",
    "MCFBCryptPasswordHasher",
    "PHCArgon2PasswordHasher",
    "check_password_hashers",
]


class _BareAlgorithm(str):
    """The empty string, but truthy: Django's key for hashes that start with ``$``."""

    __slots__ = ()

    def __bool__(self) -> bool:
        # get_hashers() raises ImproperlyConfigured for a falsy algorithm.
        return True

    def __repr__(self) -> str:
        return "BARE_ALGORITHM"


#: What Django's ``identify_hasher`` reads as the algorithm of ``$argon2id$...``
#: or ``$2b$...``: the empty string before the first ``$``.
BARE_ALGORITHM: str = _BareAlgorithm("")


class BareHashPasswordHasher(django_hashers.BasePasswordHasher):
    """Verify-only Django hasher for bare Argon2 PHC and bcrypt MCF strings.

    Raises:
        loopsafe.HasherNotAvailable: At construction, if argon2-cffi or bcrypt
            (for the formats this class reads) is not installed.
    """

    algorithm = BARE_ALGORITHM
    #: The loopsafe readers doing the work, each for its own prefixes.
    readers: ClassVar[tuple[Hasher, ...]] = (PHCArgon2Hasher(), MCFBCryptHasher())

    def __init__(self) -> None:
        """Check that each reader's library is installed (Django builds hashers once)."""
        for reader in self.readers:
            reader.check_available()

    def _reader(self, encoded: object) -> Hasher | None:
        """The reader of ``encoded``'s format, if it is well-formed and in bounds."""
        if not isinstance(encoded, str):
            return None
        for reader in self.readers:
            if encoded.startswith(reader.prefixes):
                return reader if reader.can_read(encoded) else None
        return None

    def verify(self, password: str, encoded: str) -> bool:
        """Return whether ``password`` matches; False for anything unreadable, after equal work."""
        reader = self._reader(encoded)
        if reader is None:
            # Django picked this hasher for the empty prefix alone: do what its
            # verify_password does for an unknown algorithm (ticket #20760).
            django_hashers.make_password(
                get_random_string(django_hashers.UNUSABLE_PASSWORD_SUFFIX_LENGTH)
            )
            return False
        return reader.verify(password, encoded)

    def must_update(self, encoded: str) -> bool:  # noqa: ARG002 - Django's signature
        """True: every bare hash is to be replaced by the preferred hasher's."""
        return True

    def harden_runtime(self, password: str, encoded: str) -> None:
        """Nothing: Django calls this only for its preferred algorithm, which this never is."""

    def decode(self, encoded: str) -> dict[str, Any]:
        """Return the fields of a readable bare hash (``algorithm`` is its format's name).

        Raises:
            ValueError: If ``encoded`` is not a readable hash of this class's
                formats; the message does not quote it.
        """
        reader = self._reader(encoded)
        if reader is None:
            raise ValueError("not a readable bare Argon2 or bcrypt hash")
        return reader.decode(encoded)

    def safe_summary(self, encoded: str) -> dict[str | _StrPromise, Any]:
        """What the admin shows: the format and masked salt and hash, never the whole string."""
        reader = self._reader(encoded)
        if reader is None:
            return {_("algorithm"): _("unreadable hash starting with $")}
        decoded = reader.decode(encoded)
        variety = decoded.get("variety", decoded.get("prefix", ""))
        return {
            _("algorithm"): f"{reader.algorithm} {variety}".strip(),
            _("salt"): django_hashers.mask_hash(str(decoded["salt"])),
            _("hash"): django_hashers.mask_hash(str(decoded["hash"])),
        }

    def salt(self) -> str:
        """Refuse: these hashers only read hashes.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(self._refusal())

    def encode(self, password: str, salt: str) -> str:
        """Refuse: these hashers only read hashes.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(self._refusal())

    def _refusal(self) -> str:
        return (
            f"{type(self).__name__} only reads hashes other libraries made: put a hasher "
            "that makes hashes (e.g. Argon2PasswordHasher) first in PASSWORD_HASHERS"
        )


class PHCArgon2PasswordHasher(BareHashPasswordHasher):
    """Verify-only Django hasher for bare Argon2 PHC strings (``$argon2id$...``) only."""

    readers: ClassVar[tuple[Hasher, ...]] = (PHCArgon2Hasher(),)


class MCFBCryptPasswordHasher(BareHashPasswordHasher):
    """Verify-only Django hasher for bare bcrypt strings (``$2b$...``) only."""

    readers: ClassVar[tuple[Hasher, ...]] = (MCFBCryptHasher(),)


def check_password_hashers(paths: list[str] | None = None) -> None:
    """Raise ``ImproperlyConfigured`` if ``PASSWORD_HASHERS`` misuses the bare-hash hashers.

    The ``loopsafe.django`` app calls this when Django starts, so a mistake
    shows then rather than at the first login: one of these hashers first
    (it cannot make hashes), more than one of them (Django keeps one per
    algorithm), or the library a configured one needs missing.

    Args:
        paths: Default ``settings.PASSWORD_HASHERS``.

    Raises:
        ImproperlyConfigured: Naming the setting and what to change.
    """
    if paths is None:
        paths = list(settings.PASSWORD_HASHERS)
    bare: list[tuple[int, str, type[BareHashPasswordHasher]]] = []
    for index, path in enumerate(paths):
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, BareHashPasswordHasher):
            bare.append((index, path, cls))
    if not bare:
        return
    if bare[0][0] == 0:
        raise ImproperlyConfigured(
            f"PASSWORD_HASHERS: {bare[0][1]} only reads existing hashes and cannot make new "
            "ones; put a hasher that does (e.g. Argon2PasswordHasher) first"
        )
    if len(bare) > 1:
        names = ", ".join(path for _, path, _ in bare)
        raise ImproperlyConfigured(
            f"PASSWORD_HASHERS: only one bare-hash hasher can be used (Django keeps one per "
            f"algorithm), not {names}: BareHashPasswordHasher reads both formats"
        )
    try:
        for reader in bare[0][2].readers:
            reader.check_available()
    except HasherNotAvailable as exc:
        raise ImproperlyConfigured(f"PASSWORD_HASHERS: {bare[0][1]}: {exc}") from exc
