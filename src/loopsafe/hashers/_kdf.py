"""The key derivation functions under PBKDF2 and scrypt: hashlib's or cryptography's, the faster.

Both compute the same bytes (RFC 8018 PBKDF2-HMAC, RFC 7914 scrypt), both
through OpenSSL, and both release the GIL while they run. They differ in
which OpenSSL: hashlib calls the system's, and OpenSSL 3.0 to 3.4 copies and
allocates an HMAC state on every PBKDF2 iteration (openssl/openssl#25703,
fixed in 3.5), while ``cryptography``'s wheels bundle a recent one. Where the
system library is older, ``cryptography`` computes Django's PBKDF2 in about
0.55x the CPU; where it is as recent, the two are equal.

So the backend is chosen by measuring, not by version numbers: the first call
for a KDF (PBKDF2 or scrypt) times a scaled-down hash with each backend,
interleaved, on the calling thread's own CPU clock (`time.thread_time`: other
threads' work does not count), and the faster one is used by every call in
this process after it. It runs in the thread that first hashes (a worker of
the pool, never the event loop) and costs about 20 ms, once. Without
``cryptography`` there is nothing to measure: hashlib.

``LOOPSAFE_KDF_BACKEND`` (``hashlib``, ``cryptography`` or ``auto``, the
default) overrides the measurement for operators and CI; it is read once, at
that first call. `kdf_backends` says what was chosen and why.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from loopsafe.exceptions import HasherNotAvailable

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "BACKENDS",
    "ENV_VARIABLE",
    "KDFS",
    "KDFBackend",
    "backend",
    "chosen_backends",
    "kdf_backends",
    "pbkdf2_hmac",
    "scrypt",
    "scrypt_memory",
]

#: The two implementations.
BACKENDS: Final = ("hashlib", "cryptography")
#: The KDFs that get a backend each.
KDFS: Final = ("pbkdf2", "scrypt")
#: The environment variable that overrides the measurement.
ENV_VARIABLE: Final = "LOOPSAFE_KDF_BACKEND"
#: The install hint for the fast backend.
_EXTRA: Final = "pip install 'loopsafe[cryptography]'"
#: PBKDF2 digests cryptography computes here (others always go through hashlib).
_DIGESTS: Final = ("sha256", "sha1")
#: The scaled-down work the measurement times (a few ms each), and how often.
_PROBE_ITERATIONS: Final = 20_000
_PROBE_SCRYPT: Final = (2**10, 8, 2)
_PROBE_ROUNDS: Final = 3


def scrypt_memory(n: int, r: int, p: int) -> int:
    """Bytes one scrypt computation holds: its V array (128 r N) and its p blocks (128 r p)."""
    return 128 * r * (n + p)


@dataclass(frozen=True)
class KDFBackend:
    """Which implementation computes a KDF in this process, and why.

    Attributes:
        kdf: ``pbkdf2`` or ``scrypt``.
        backend: ``hashlib`` or ``cryptography``.
        chosen_by: ``measurement`` (both timed, the faster won),
            ``environment`` (``LOOPSAFE_KDF_BACKEND``) or ``only`` (cryptography
            is not installed).
        probe_seconds: The scaled-down hash's CPU seconds per backend (best of
            three), when measured.
    """

    kdf: str
    backend: str
    chosen_by: str
    probe_seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The choice as JSON-ready values."""
        return {
            "backend": self.backend,
            "chosen_by": self.chosen_by,
            "probe_seconds": {k: round(v, 6) for k, v in self.probe_seconds.items()},
        }

    def describe(self) -> str:
        """One line for people: ``cryptography (measured: 2.4 ms vs hashlib 4.4 ms)``."""
        if self.chosen_by == "measurement":
            times = " vs ".join(
                f"{name} {seconds * 1000:.2f} ms" for name, seconds in self.probe_seconds.items()
            )
            return f"{self.backend} (measured on a scaled-down hash: {times})"
        if self.chosen_by == "environment":
            return f"{self.backend} (set by {ENV_VARIABLE})"
        return f"{self.backend} (cryptography is not installed: {_EXTRA})"


_lock = threading.Lock()
_chosen: dict[str, KDFBackend] = {}


def _cryptography_available() -> bool:
    try:
        from cryptography.hazmat.primitives.kdf import pbkdf2, scrypt
    except ImportError:
        return False
    return hasattr(pbkdf2, "PBKDF2HMAC") and hasattr(scrypt, "Scrypt")


def _pbkdf2_cryptography(digest: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    algorithm: hashes.HashAlgorithm = hashes.SHA256() if digest == "sha256" else hashes.SHA1()  # noqa: S303 - Django's pbkdf2_sha1 format
    kdf = PBKDF2HMAC(
        algorithm=algorithm, length=algorithm.digest_size, salt=salt, iterations=iterations
    )
    return kdf.derive(password)


def _pbkdf2_hashlib(digest: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(digest, password, salt, iterations)


def _scrypt_cryptography(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(password)


def _scrypt_hashlib(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL refuses more than 32 MiB unless maxmem says otherwise (Django
    # leaves it at that); allow what N, r and p need (the callers bound them).
    maxmem = scrypt_memory(n, r, p) + 256 * r + 1024 * 1024
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=64)


def _probe(kdf: str, name: str) -> Callable[[], bytes]:
    """The scaled-down hash that times backend ``name`` for ``kdf``."""
    if kdf == "pbkdf2":
        derive = _pbkdf2_cryptography if name == "cryptography" else _pbkdf2_hashlib
        return lambda: derive("sha256", b"loopsafe-probe", b"salt" * 4, _PROBE_ITERATIONS)
    n, r, p = _PROBE_SCRYPT
    run = _scrypt_cryptography if name == "cryptography" else _scrypt_hashlib
    return lambda: run(b"loopsafe-probe", b"salt" * 4, n, r, p)


def _measure(kdf: str) -> KDFBackend:
    """Time both backends on a scaled-down hash, alternating, best of three each."""
    best = dict.fromkeys(BACKENDS, math.inf)
    probes = {name: _probe(kdf, name) for name in BACKENDS}
    outputs = {name: probes[name]() for name in BACKENDS}  # warm-up, and a sanity check
    if outputs["hashlib"] != outputs["cryptography"]:  # pragma: no cover - a broken library
        return KDFBackend(kdf, "hashlib", "measurement")
    for round_ in range(_PROBE_ROUNDS):
        order = BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]
        for name in order:
            start = time.thread_time()
            probes[name]()
            best[name] = min(best[name], time.thread_time() - start)
    winner = "cryptography" if best["cryptography"] < best["hashlib"] else "hashlib"
    return KDFBackend(kdf, winner, "measurement", best)


def _choose(kdf: str) -> KDFBackend:
    wanted = os.environ.get(ENV_VARIABLE, "").strip().lower() or "auto"
    if wanted not in (*BACKENDS, "auto"):
        raise ValueError(f"{ENV_VARIABLE} must be hashlib, cryptography or auto, not {wanted!r}")
    available = _cryptography_available()
    if wanted == "cryptography" and not available:
        raise HasherNotAvailable(f"{ENV_VARIABLE}=cryptography needs cryptography: {_EXTRA}")
    if wanted != "auto":
        return KDFBackend(kdf, wanted, "environment")
    if not available:
        return KDFBackend(kdf, "hashlib", "only")
    return _measure(kdf)


def backend(kdf: str) -> KDFBackend:
    """The backend of ``kdf`` (``pbkdf2`` or ``scrypt``), chosen on the first call and cached.

    Raises:
        ValueError: If ``LOOPSAFE_KDF_BACKEND`` is set to an unknown name.
        HasherNotAvailable: If it asks for cryptography, which is not installed.
    """
    chosen = _chosen.get(kdf)
    if chosen is None:
        with _lock:
            chosen = _chosen.get(kdf)
            if chosen is None:
                chosen = _chosen[kdf] = _choose(kdf)
    return chosen


def kdf_backends() -> dict[str, KDFBackend]:
    """Which implementation computes PBKDF2 and scrypt in this process (measuring if not yet).

    The first call for each KDF measures both backends (about 20 ms of CPU),
    so call it off the event loop, or after the first hash.

    Raises:
        ValueError: If ``LOOPSAFE_KDF_BACKEND`` is set to an unknown name.
        HasherNotAvailable: If it asks for cryptography, which is not installed.
    """
    return {kdf: backend(kdf) for kdf in KDFS}


def chosen_backends() -> dict[str, KDFBackend]:
    """The choices made so far, without measuring (empty before the first PBKDF2 or scrypt)."""
    return dict(_chosen)


def _reset() -> None:
    """Forget the choices, so the next call chooses again (for tests)."""
    with _lock:
        _chosen.clear()


def pbkdf2_hmac(digest: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """``hashlib.pbkdf2_hmac(digest, password, salt, iterations)``, on this process's backend.

    The key is the digest's size, as Django's. Digests other than SHA-256 and
    SHA-1 always go through hashlib.
    """
    if digest in _DIGESTS and backend("pbkdf2").backend == "cryptography":
        return _pbkdf2_cryptography(digest, password, salt, iterations)
    return _pbkdf2_hashlib(digest, password, salt, iterations)


def scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    """Derive scrypt's 64-byte key (Django's length) on this process's backend.

    The caller bounds N, r and p; memory is not limited further here.

    Raises:
        ValueError: For parameters OpenSSL refuses (N not a power of two...).
        MemoryError: If the memory cannot be had.
    """
    if backend("scrypt").backend == "cryptography":
        return _scrypt_cryptography(password, salt, n, r, p)
    return _scrypt_hashlib(password, salt, n, r, p)
