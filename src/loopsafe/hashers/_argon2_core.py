"""Argon2 with the lanes the hash asks for and as many threads as loopsafe chooses.

An Argon2 hash's parallelism is the number of *lanes* its memory is split
into; it is part of the hash. How many *threads* compute those lanes is not:
the reference implementation's ``argon2_context`` has separate ``lanes`` and
``threads`` fields, and one thread that computes the 8 lanes in turn writes
the same bytes as 8 threads. argon2-cffi's ``hash_secret`` and
``verify_secret`` always start one thread per lane. A loopsafe pool already
runs one hash per core, so on a pool worker those lane threads only compete
with the event loop's thread: here the lanes are computed by ``threads``
threads instead, through argon2-cffi's own binding of the C function
(``argon2.low_level.core`` with an ``argon2_context``). argon2-cffi stays the
only Argon2 code; this module fills the context, nothing else.

`hash_raw` returns what ``argon2.low_level.hash_secret_raw`` returns,
`hash_encoded` what ``hash_secret`` returns, and `verify_encoded` answers as
``verify_secret`` does (True, or False where that raises
``VerificationError``), for every lane count, type and version: the tests
compare them byte for byte. `decode` reads a PHC string exactly as the C
library's ``decode_string`` does, so a string it refuses verifies as False
here as it does there. One deliberate difference: memory the hash cannot get
(``ARGON2_MEMORY_ALLOCATION_ERROR``) raises `MemoryError` rather than answering
False, since a refused allocation says nothing about the password; a pool turns
it into ``Overloaded``. Bounds on the cost (loopsafe's ``max_memory_cost``
and friends) are the callers' business: this module computes what it is given.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import mmap
import os
import re
import threading
from dataclasses import dataclass
from typing import Any

from argon2 import low_level
from argon2.low_level import ARGON2_VERSION, Type, core, ffi

# The C library's constants and functions, as argon2-cffi binds them (the
# same object as its ``_argon2_cffi_bindings.lib``); untyped there too.
lib: Any = low_level.lib  # type: ignore[attr-defined] # argon2-cffi imports it without re-exporting

__all__ = [
    "PHCHash",
    "decode",
    "hash_encoded",
    "hash_raw",
    "verify_encoded",
]

_U32_MAX = 0xFFFFFFFF
#: Argon2 1.0, the version of a PHC string without ``v=``.
ARGON2_VERSION_10 = 0x10
#: The highest thread count the C library accepts (``ARGON2_MAX_THREADS``).
MAX_THREADS = 0xFFFFFF

# The C library's decode_string: "$", the type's name, an optional "$v=N",
# "$m=N,t=N,p=N" in this order, then the salt and the tag in unpadded base64.
# Decimals are plain ASCII digits without leading zeros, as in C.
_PHC = re.compile(
    r"\$(argon2id|argon2i|argon2d)(?:\$v=(0|[1-9][0-9]*))?"
    r"\$m=(0|[1-9][0-9]*),t=(0|[1-9][0-9]*),p=(0|[1-9][0-9]*)"
    r"\$([A-Za-z0-9+/]*)\$([A-Za-z0-9+/]*)"
)
_TYPES = {"argon2id": Type.ID, "argon2i": Type.I, "argon2d": Type.D}
_NAMES = {kind: name for name, kind in _TYPES.items()}


@dataclass(frozen=True, repr=False)
class PHCHash:
    """A decoded Argon2 PHC string: the parameters, the salt and the tag.

    The repr shows the parameters only, never the salt or the tag.
    """

    type: Type
    version: int
    memory_cost: int
    time_cost: int
    parallelism: int
    salt: bytes
    tag: bytes

    def __repr__(self) -> str:
        return (
            f"PHCHash({_NAMES[self.type]}, v={self.version}, m={self.memory_cost}, "
            f"t={self.time_cost}, p={self.parallelism})"
        )


def _unpadded_b64(text: str) -> bytes | None:
    """Decode unpadded base64 as the C library's ``from_base64``: canonical or nothing."""
    if len(text) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:  # pragma: no cover - the pattern only lets base64 through
        return None
    # Non-zero bits after the last whole byte: C refuses them, so do we.
    if base64.b64encode(raw).decode("ascii").rstrip("=") != text:
        return None
    return raw


def decode(encoded: str | bytes) -> PHCHash | None:
    """Parse ``$argon2id$v=19$m=..,t=..,p=..$<salt>$<tag>`` as the C library does.

    A missing ``v=`` means version 16 (Argon2 1.0). Numbers must fit in 32
    bits. Returns None for anything the C library's decoder refuses; the
    ranges (salt length, memory per lane...) are checked when the hash is
    computed, by the C library, as they are for argon2-cffi.
    """
    if isinstance(encoded, bytes):
        try:
            encoded = encoded.decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _PHC.fullmatch(encoded)
    if match is None:
        return None
    name, version, memory, time, lanes, salt_b64, tag_b64 = match.groups()
    numbers = [int(version or ARGON2_VERSION_10), int(memory), int(time), int(lanes)]
    if any(number > _U32_MAX for number in numbers):
        return None
    salt, tag = _unpadded_b64(salt_b64), _unpadded_b64(tag_b64)
    if salt is None or tag is None:
        return None
    version_n, memory_n, time_n, lanes_n = numbers
    return PHCHash(_TYPES[name], version_n, memory_n, time_n, lanes_n, salt, tag)


class _Arena:
    """Argon2's block memory: huge-page mappings, at most ``keep`` of them kept between hashes.

    Without it the C library mallocs and frees the memory of every hash: for
    Django's 100 MiB that is a fresh mapping, 25,600 page faults with the
    kernel zeroing each page, and an unmap, about a quarter of the hash's CPU
    time. Here the C library's allocation callbacks take a buffer from a
    free list and give it back; the C library wipes the memory before it
    gives it back (its ``clear_internal_memory``), so no secret outlives a
    hash. The buffers are anonymous mappings advised to use transparent huge
    pages where the kernel offers them (fewer TLB misses on Argon2's random
    reads): with ``keep`` 0, the default, each hash maps and unmaps its own. At
    most ``keep`` buffers stay mapped between hashes; a buffer above
    ``max_bytes`` is never kept, so one stored hash with a huge memory cost
    cannot leave its memory behind.
    """

    def __init__(self, keep: int, max_bytes: int) -> None:
        #: False: the C library's malloc, as argon2-cffi does (benchmarks compare it).
        self.enabled = True
        self._lock = threading.Lock()
        self._free: list[tuple[mmap.mmap, Any]] = []
        self._lent: dict[int, tuple[mmap.mmap, Any]] = {}
        self.keep = keep
        self.max_bytes = max_bytes

    def take(self, size: int) -> Any:  # noqa: ANN401 - a cffi pointer
        """Return a pointer to ``size`` bytes or more, or NULL when there is no memory."""
        with self._lock:
            # The free list is sorted largest first: take the smallest that fits.
            for index in reversed(range(len(self._free))):
                mapping, pointer = self._free[index]
                if len(mapping) >= size:
                    del self._free[index]
                    self._lent[int(ffi.cast("uintptr_t", pointer))] = (mapping, pointer)
                    return pointer
        try:
            mapping = _map(size)
        except (OSError, ValueError, OverflowError):
            return ffi.NULL
        pointer = ffi.from_buffer("uint8_t[]", mapping)
        with self._lock:
            self._lent[int(ffi.cast("uintptr_t", pointer))] = (mapping, pointer)
        return pointer

    def give_back(self, pointer: Any) -> None:  # noqa: ANN401 - a cffi pointer
        """Keep the (wiped) buffer for the next hash, or unmap it."""
        with self._lock:
            entry = self._lent.pop(int(ffi.cast("uintptr_t", pointer)), None)
            if entry is None:  # pragma: no cover - the C library frees what it took
                return
            if len(entry[0]) > self.max_bytes:
                drop = [entry]
            else:
                # Keep the largest buffers: the next hash of the site's size fits in them.
                self._free.append(entry)
                self._free.sort(key=lambda kept: len(kept[0]), reverse=True)
                drop = self._free[self.keep :]
                del self._free[self.keep :]
        for dropped in drop:
            _unmap(dropped)

    def clear(self) -> None:
        """Unmap every buffer not in use now."""
        with self._lock:
            free, self._free = self._free, []
        for entry in free:
            _unmap(entry)

    def kept_bytes(self) -> int:
        """Bytes mapped for hashes to come (not counting buffers in use)."""
        with self._lock:
            return sum(len(mapping) for mapping, _ in self._free)


def _map(size: int) -> mmap.mmap:
    """A private anonymous mapping of ``size`` bytes, advised to use huge pages where it can be."""
    private = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    mapping = mmap.mmap(-1, size, flags=private) if private else mmap.mmap(-1, size)
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        with contextlib.suppress(OSError):  # a kernel without transparent huge pages
            mapping.madvise(advice)
    return mapping


def _unmap(entry: tuple[mmap.mmap, Any]) -> None:
    mapping, pointer = entry
    ffi.release(pointer)
    mapping.close()


#: Django's 100 MiB hashes and up to 2.5 times that keep their memory.
DEFAULT_ARENA_MAX_BYTES = 256 * 1024 * 1024
#: Buffers kept between hashes by default: none. Each hash maps its memory
#: (advised to use huge pages, most of the CPU saving) and unmaps it after, so
#: a process holds Argon2 memory only while it hashes: the memory a host budget
#: or a container limit counts. `keep_memory` keeps some, for a little more speed.
DEFAULT_ARENA_KEEP = 0
_arena = _Arena(keep=DEFAULT_ARENA_KEEP, max_bytes=DEFAULT_ARENA_MAX_BYTES)


def _after_fork_in_child() -> None:
    """A forked child has one thread: the lock may have been held, the lent buffers are gone."""
    _arena._lock = threading.Lock()  # noqa: SLF001 - the arena is this module's own
    _arena._lent.clear()  # noqa: SLF001


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_allocate_error(*_: object) -> None:
    """An allocation callback that failed leaves the pointer NULL: the C library then fails."""


def _make_callbacks() -> tuple[Any, Any]:
    """The callbacks for ``argon2_context`` (NULL, i.e. malloc, where cffi cannot make them)."""

    def allocate(memory: Any, size: int) -> int:  # noqa: ANN401 - cffi pointers
        memory[0] = _arena.take(size)
        return 0

    def free(memory: Any, size: int) -> None:  # noqa: ANN401, ARG001 - cffi's signature
        _arena.give_back(memory)

    try:
        return (
            ffi.callback("int(uint8_t **, size_t)", allocate, onerror=_on_allocate_error),
            ffi.callback("void(uint8_t *, size_t)", free, onerror=_on_allocate_error),
        )
    except (MemoryError, RuntimeError):  # pragma: no cover - a system that forbids callbacks
        return ffi.NULL, ffi.NULL


_allocate_cbk, _free_cbk = _make_callbacks()


def keep_memory(buffers: int, *, max_bytes: int = DEFAULT_ARENA_MAX_BYTES) -> None:
    """Keep at most ``buffers`` Argon2 memory buffers of at most ``max_bytes`` between hashes.

    0 (the default) keeps none: every hash maps its memory and unmaps it after.
    Kept buffers save the mapping and page-fault work of the next hash, but stay
    resident while the process is idle, in every worker process: one buffer per
    hashing thread that ever ran. The buffers in excess are unmapped now.
    """
    _arena.keep = buffers
    _arena.max_bytes = max_bytes
    with _arena._lock:  # noqa: SLF001 - the arena is this module's own
        excess = _arena._free[buffers:]  # noqa: SLF001
        del _arena._free[buffers:]  # noqa: SLF001
    for entry in excess:
        _unmap(entry)


def _check_threads(threads: object) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int, not {type(threads).__name__}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be in [1, {MAX_THREADS}]")
    return threads


def _compute(
    secret: bytes,
    salt: bytes,
    *,
    time_cost: int,
    memory_cost: int,
    parallelism: int,
    hash_len: int,
    type: Type,  # noqa: A002 - argon2-cffi's name for it
    version: int,
    threads: int,
) -> tuple[int, bytes]:
    """Run ``argon2_ctx`` once; return its error code and the tag.

    Raises:
        MemoryError: The block memory could not be allocated (the arena's
            mapping or the C library's malloc failed).
    """
    out = ffi.new("uint8_t[]", hash_len)
    pwd = ffi.new("uint8_t[]", secret)
    salt_buf = ffi.new("uint8_t[]", salt)
    ctx: Any = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": hash_len,
            "pwd": pwd,
            "pwdlen": len(secret),
            "salt": salt_buf,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": time_cost,
            "m_cost": memory_cost,
            "lanes": parallelism,
            # The C library computes min(threads, lanes) threads.
            "threads": threads,
            "version": version,
            # Block memory from the arena: huge-page mappings, kept or not (`keep_memory`).
            "allocate_cbk": _allocate_cbk if _arena.enabled else ffi.NULL,
            "free_cbk": _free_cbk if _arena.enabled else ffi.NULL,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    # cffi releases the GIL for the call: the loop's thread runs meanwhile.
    code: int = core(ctx, type.value)
    if code == lib.ARGON2_MEMORY_ALLOCATION_ERROR:
        # The kernel refused the memory (mmap failed: a container at its limit, an
        # address-space limit): no answer about the password, so not False either.
        raise MemoryError(f"Argon2 could not get its {memory_cost} KiB of memory")
    return code, bytes(ffi.buffer(out, hash_len))


def hash_raw(
    secret: bytes,
    salt: bytes,
    *,
    time_cost: int,
    memory_cost: int,
    parallelism: int,
    hash_len: int,
    type: Type,  # noqa: A002 - argon2-cffi's name for it
    version: int = ARGON2_VERSION,
    threads: int = 1,
) -> bytes:
    """``argon2.low_level.hash_secret_raw``, computed by ``threads`` threads.

    Raises:
        argon2.exceptions.HashingError: The C library refused the parameters.
        MemoryError: The hash's memory could not be had.
        TypeError, ValueError: ``threads`` is not an int in [1, 2**24 - 1].
    """
    from argon2.exceptions import HashingError  # noqa: PLC0415 - the error path only

    code, tag = _compute(
        secret,
        salt,
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=hash_len,
        type=type,
        version=version,
        threads=_check_threads(threads),
    )
    if code != lib.ARGON2_OK:
        message: bytes = ffi.string(lib.argon2_error_message(code))
        raise HashingError(message.decode("ascii"))
    return tag


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def hash_encoded(
    secret: bytes,
    salt: bytes,
    *,
    time_cost: int,
    memory_cost: int,
    parallelism: int,
    hash_len: int,
    type: Type,  # noqa: A002 - argon2-cffi's name for it
    version: int = ARGON2_VERSION,
    threads: int = 1,
) -> bytes:
    """``argon2.low_level.hash_secret`` (the PHC string, as bytes), by ``threads`` threads.

    The C library's encoder writes ``v=`` always, then m, t and p in this order.

    Raises:
        argon2.exceptions.HashingError: The C library refused the parameters.
    """
    tag = hash_raw(
        secret,
        salt,
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=hash_len,
        type=type,
        version=version,
        threads=threads,
    )
    text = (
        f"${_NAMES[type]}$v={version}$m={memory_cost},t={time_cost},p={parallelism}"
        f"${_b64(salt)}${_b64(tag)}"
    )
    return text.encode("ascii")


def verify_decoded(secret: bytes, decoded: PHCHash, *, threads: int = 1) -> bool:
    """Whether ``secret`` makes ``decoded``'s tag; False where the C library refuses the hash.

    Raises:
        MemoryError: The hash's memory could not be had: there is no answer
            (argon2-cffi's ``verify_secret`` raises ``VerificationError``, which
            Django would turn into a wrong-password False).
    """
    code, tag = _compute(
        secret,
        decoded.salt,
        time_cost=decoded.time_cost,
        memory_cost=decoded.memory_cost,
        parallelism=decoded.parallelism,
        hash_len=len(decoded.tag),
        type=decoded.type,
        version=decoded.version,
        threads=_check_threads(threads),
    )
    return code == lib.ARGON2_OK and hmac.compare_digest(tag, decoded.tag)


def verify_encoded(encoded: str | bytes, secret: bytes, type: Type, *, threads: int = 1) -> bool:  # noqa: A002 - argon2-cffi's name for it
    """``argon2.low_level.verify_secret`` as a bool, computed by ``threads`` threads.

    True where argon2-cffi returns True; False where it raises
    ``VerificationError`` (a mismatch, a string its decoder refuses, a string
    of another type than ``type``, parameters the C library refuses).
    """
    decoded = decode(encoded)
    if decoded is None or decoded.type != type:
        return False
    return verify_decoded(secret, decoded, threads=threads)
