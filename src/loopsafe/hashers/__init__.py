"""The algorithms: password hashers in Django's encoded formats, without Django.

Pure and synchronous: nothing here knows about event loops, pools or Django.
Every encoded string is byte-for-byte what Django's hasher of the same name
makes and reads (``algorithm$...``), so hashes move freely between a Django
database and a FastAPI service. Django 5.2's ``django/contrib/auth/hashers.py``
is the reference for the formats and for `verify_password`.

Three promises beyond Django's:

* ``verify`` never raises for a malformed or hostile encoded string: it
  returns False. Parameters are checked against each class's bounds
  (``max_iterations``, ``max_memory_cost``, ``max_rounds``...) *before* any
  work, so a stored ``pbkdf2_sha256$1000000000000$...`` or an Argon2 hash asking
  for terabytes cannot turn one login into a denial of service. The bounds are
  class attributes: a site that really uses more subclasses and raises them.
* Passwords are ``str`` (encoded as UTF-8, like Django) or ``bytes``; any other
  type is a `TypeError` whose message names the type, never the value.
* No exception message or repr made here contains a password, and none quotes
  an encoded string (a plaintext password stored by mistake would be one).

Two verify-only readers, `PHCArgon2Hasher` and `MCFBCryptHasher`, take the
bare strings other libraries store (``$argon2id$...`` from argon2-cffi, pwdlib
or passlib; ``$2b$...`` from bcrypt), under the same bounds, so that users of
those libraries can move: every such hash needs an update, and the next correct
login replaces it with a Django-format one.

PBKDF2 and scrypt need nothing beyond the standard library; with
``cryptography`` installed (``loopsafe[cryptography]``, also in the ``django``
and ``all`` extras) they run on whichever of the two is faster here, with the
same bytes out.

argon2-cffi and bcrypt are optional: they are imported on first use (Python
then keeps them in ``sys.modules``), and a hasher that needs a missing one
raises `HasherNotAvailable`, naming the extra to install, when it is used.
Constructing one never imports anything, so a profile's full hasher list can be
built on a core-only install; call `Hasher.check_available` to fail early.

The modules behind this package, one idea each:

* ``_fields``: field parsers and argument checks every format shares;
* ``_base``: `Hasher`, the shared parse-bound-verify logic;
* ``_kdf``: PBKDF2 and scrypt through hashlib or ``cryptography``, whichever
  measures faster on this machine (`kdf_backends` says which);
* ``_pbkdf2``, ``_argon2``, ``_bcrypt``, ``_scrypt``, ``_md5``: Django's formats;
* ``_readers``: `PHCArgon2Hasher` and `MCFBCryptHasher`;
* ``_identify``: `identify_hasher` and `verify_password`, Django's rules.
"""

from __future__ import annotations

from loopsafe.hashers._argon2 import Argon2Hasher
from loopsafe.hashers._base import Hasher
from loopsafe.hashers._bcrypt import BCryptHasher, BCryptSHA256Hasher
from loopsafe.hashers._identify import identify_hasher, verify_password
from loopsafe.hashers._kdf import KDFBackend, kdf_backends
from loopsafe.hashers._md5 import MD5Hasher
from loopsafe.hashers._pbkdf2 import PBKDF2Hasher, PBKDF2SHA1Hasher
from loopsafe.hashers._readers import MCFBCryptHasher, PHCArgon2Hasher
from loopsafe.hashers._scrypt import ScryptHasher

__all__ = [
    "Argon2Hasher",
    "BCryptHasher",
    "BCryptSHA256Hasher",
    "Hasher",
    "KDFBackend",
    "MCFBCryptHasher",
    "MD5Hasher",
    "PBKDF2Hasher",
    "PBKDF2SHA1Hasher",
    "PHCArgon2Hasher",
    "ScryptHasher",
    "identify_hasher",
    "kdf_backends",
    "verify_password",
]
