"""Fair queueing: which admitted call runs next, when calls carry a client key.

`FairQueue` replaces the pool's single FIFO. Each call carries a *key* (the
client it is for: an address, a subnet, an account) and a small integer
*priority*. The queue keeps one FIFO sub-queue per key and priority and picks
the next call so that one key cannot hog the workers:

- **Priority first.** A call of a higher priority is always taken before one
  of a lower priority (strict priority; there are only a few levels).
- **Sparse keys first, then round robin.** Within one priority, a key that had
  nothing queued goes on the *new* list; keys still holding queued calls after
  their turn go round the *old* list. New keys are served before old ones, so a
  client sending one login at a time is not stuck behind a flood's backlog,
  while the flood's own calls are served one per round (the "new flows first"
  rule of Linux's ``fq_codel``, RFC 8290). After `SPARSE_BURST` new-key turns in
  a row the old list gets a turn, so no key starves: a key's next queued call
  is dispatched within a bounded number of dispatches at its priority (see
  `FairQueue.pop`).
- **Without keys it is FIFO.** Calls without a key share the key ``None``, and
  with one key and one priority the order is exactly first in, first out.

The queue also counts, per key, the calls it holds queued *or running*
(`held`): admission uses that to refuse the key that holds more than its fair
share. A key whose count drops to zero is forgotten at once, so memory grows
with the calls in the pool, never with the number of distinct keys ever seen.

Push, pop, remove and release are O(1) (at most `MAX_PRIORITY` -
`MIN_PRIORITY` + 1 levels are scanned). Nothing here locks: the pool calls it
under its own lock. Key values are client addresses: nothing here logs them,
puts them in an exception or exports them; only counts leave this module.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, Generic, TypeAlias, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "SPARSE_BURST",
    "FairQueue",
    "Key",
    "check_key",
    "check_priority",
]

T = TypeVar("T")

_Atom: TypeAlias = (
    "str | bytes | int | ipaddress.IPv4Address | ipaddress.IPv6Address"
    " | ipaddress.IPv4Network | ipaddress.IPv6Network"
)
#: What may identify a client: a string (an address), bytes, an int, an
#: `ipaddress` address or network (to group a subnet), or a tuple of those
#: (``(address, username)``). None means "no key": the shared key.
Key: TypeAlias = "_Atom | tuple[_Atom, ...] | None"

_ATOM_TYPES: Final = (
    str,
    bytes,
    int,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)

#: Lowest and highest priority a call may have; 0 is the default.
MIN_PRIORITY: Final = -3
MAX_PRIORITY: Final = 3

#: Turns the new (sparse) keys may take in a row, at one priority, while old
#: keys wait. Small enough that a backlogged key keeps moving, large enough
#: that a burst of one-call clients is served ahead of it.
SPARSE_BURST: Final = 4

#: Excludes no key (None is a key: the shared one).
_NOBODY: Final = object()


def _is_atom(value: object) -> bool:
    return isinstance(value, _ATOM_TYPES) and not isinstance(value, bool)


def check_key(key: object) -> None:
    """Raise `TypeError` unless ``key`` may identify a client.

    The message names the type only, never the value (keys are client addresses).
    """
    if key is None or _is_atom(key):
        return
    if isinstance(key, tuple) and key and all(_is_atom(part) for part in key):
        return
    raise TypeError(
        "key must be None, str, bytes, int, an ipaddress address or network, or a "
        f"non-empty tuple of those, not {type(key).__name__}"
    )


def check_priority(priority: object) -> None:
    """Raise `TypeError` or `ValueError` unless ``priority`` is a valid priority."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}")


class _Level(Generic[T]):
    """The calls of one priority: per-key FIFOs on a new list and an old list."""

    __slots__ = ("new", "old", "queued", "sparse_turns")

    def __init__(self) -> None:
        # key -> that key's FIFO (an OrderedDict used as an ordered set: O(1)
        # append, pop-first and removal of any element).
        self.new: OrderedDict[Key, OrderedDict[T, None]] = OrderedDict()
        self.old: OrderedDict[Key, OrderedDict[T, None]] = OrderedDict()
        self.queued = 0
        self.sparse_turns = 0

    def sub_queue(self, key: Key) -> OrderedDict[T, None] | None:
        sub = self.new.get(key)
        return sub if sub is not None else self.old.get(key)

    def pop(self) -> T:
        take_new = bool(self.new) and (not self.old or self.sparse_turns < SPARSE_BURST)
        if take_new:
            key, sub = next(iter(self.new.items()))
            item = sub.popitem(last=False)[0]
            del self.new[key]
            if sub:  # still backlogged: it goes round with the others
                self.old[key] = sub
            self.sparse_turns += 1
        else:
            key, sub = next(iter(self.old.items()))
            item = sub.popitem(last=False)[0]
            if sub:
                self.old.move_to_end(key)
            else:
                del self.old[key]
            self.sparse_turns = 0
        self.queued -= 1
        return item

    def remove(self, item: T, key: Key) -> None:
        sub = self.new.get(key)
        lane = self.new
        if sub is None:
            sub, lane = self.old[key], self.old
        del sub[item]
        if not sub:
            del lane[key]
        self.queued -= 1


class FairQueue(Generic[T]):
    """Queued calls by priority and key, with per-key counts of queued and running calls.

    The life of an item: `push` (queued, counted for its key) -> `pop` (it
    runs; still counted) -> `release` (done; uncounted). An item removed while
    queued (`remove`) is uncounted at once. Items must be hashable and unique.
    """

    __slots__ = ("_held", "_levels", "_queued")

    def __init__(self) -> None:
        """Start empty."""
        self._levels: dict[int, _Level[T]] = {}
        self._held: dict[Key, int] = {}
        self._queued = 0

    def __len__(self) -> int:
        """Return the number of calls queued (not running)."""
        return self._queued

    def __bool__(self) -> bool:
        """Return whether any call is queued."""
        return self._queued > 0

    def __iter__(self) -> Iterator[T]:
        """Iterate over the queued calls (in no promised order)."""
        for level in self._levels.values():
            for lane in (level.new, level.old):
                for sub in lane.values():
                    yield from sub

    @property
    def active_keys(self) -> int:
        """Keys holding at least one queued or running call."""
        return len(self._held)

    def held(self, key: Key) -> int:
        """Return the calls ``key`` has queued or running."""
        return self._held.get(key, 0)

    def most_held_by_another(self, key: Key) -> int:
        """Return the most calls any other key holds (O(active keys): for refusals only)."""
        return max((held for other, held in self._held.items() if other != key), default=0)

    def ahead(self, key: Key, priority: int) -> int:
        """Return at most how many queued calls would be dispatched before a new one.

        A bound, not an exact count: every queued call of a higher priority,
        plus at the call's own priority the smaller of all queued calls and
        ``mine + (mine + 1) x others``, where ``mine`` is the calls ``key``
        already has queued there and ``others`` the other keys queued there:
        round robin takes at most one call per key per round.
        With a single key and priority that is the queue's length, as in FIFO.
        """
        total = 0
        for level_priority, level in self._levels.items():
            if level_priority > priority:
                total += level.queued
            elif level_priority == priority:
                sub = level.sub_queue(key)
                mine = len(sub) if sub is not None else 0
                others = len(level.new) + len(level.old) - (sub is not None)
                total += min(level.queued, mine + (mine + 1) * others)
        return total

    def shed_candidate(self, key: Key, priority: int, share: float) -> tuple[T, Key, int] | None:
        """Return the queued call to refuse so that a call of ``key`` may join, or None.

        First choice: from the lowest priority below ``priority`` that has queued
        calls, the newest call of the key holding most there. Else, at
        ``priority``, the newest call of the other key holding most, if it
        holds more than ``share`` and more than ``key`` would after admission.
        Returns ``(item, its key, its priority)``. Scans the keys queued at
        the level it looks at, so it costs O(queued keys) and is meant for an
        arrival that would otherwise be refused.
        """
        lower = [p for p in self._levels if p < priority]
        if lower:
            level_priority = min(lower)
            victim = self._heaviest(self._levels[level_priority], _NOBODY)
            if victim is not None:
                return (*victim, level_priority)
        level = self._levels.get(priority)
        if level is None:
            return None
        victim = self._heaviest(level, key)
        if victim is None:
            return None
        held = self._held[victim[1]]
        if held > share and held > self.held(key) + 1:
            return (*victim, priority)
        return None

    def last_in_line(self) -> tuple[T, Key, int] | None:
        """Return the queued call that would be refused first, or None if nothing is queued.

        From the lowest priority with queued calls, the newest call of the key
        holding most there (``(item, its key, its priority)``): without keys,
        the back of the queue. O(queued keys at that priority).
        """
        if not self._levels:
            return None
        priority = min(self._levels)
        victim = self._heaviest(self._levels[priority], _NOBODY)
        return None if victim is None else (*victim, priority)

    def _heaviest(self, level: _Level[T], exclude: object) -> tuple[T, Key] | None:
        """The newest queued call of the key (not ``exclude``) holding most, at one level."""
        best: Key = None
        best_held = 0
        found = False
        for lane in (level.new, level.old):
            for key in lane:
                held = self._held[key]
                if key != exclude and held > best_held:
                    best, best_held, found = key, held, True
        if not found:
            return None
        sub = level.sub_queue(best)
        if sub is None:  # pragma: no cover - every key on a lane has a queued call
            return None
        return next(reversed(sub)), best

    def push(self, item: T, key: Key, priority: int) -> None:
        """Queue ``item`` at the back of its key's FIFO at ``priority``."""
        level = self._levels.get(priority)
        if level is None:
            level = self._levels[priority] = _Level()
        sub = level.sub_queue(key)
        if sub is None:
            sub = level.new[key] = OrderedDict()
        sub[item] = None
        level.queued += 1
        self._queued += 1
        self._held[key] = self._held.get(key, 0) + 1

    def pop(self) -> T:
        """Take the next call to run; it stays counted for its key until `release`.

        The highest priority with queued calls is served. Within it, a key
        at position ``j`` (from 1) of the new list is served within
        ``j + ceil(j / SPARSE_BURST)`` dispatches at that priority, and one at
        position ``j`` of the old list within ``j * (SPARSE_BURST + 1)``,
        however many keys arrive meanwhile (they queue behind it).

        Raises:
            IndexError: If nothing is queued.
        """
        if not self._queued:
            raise IndexError("pop from an empty FairQueue")
        priority = max(p for p, level in self._levels.items() if level.queued)
        level = self._levels[priority]
        item = level.pop()
        if not level.queued:
            del self._levels[priority]
        self._queued -= 1
        return item

    def remove(self, item: T, key: Key, priority: int) -> None:
        """Take a queued ``item`` out (its caller gave up) and uncount it.

        Raises:
            KeyError: If ``item`` is not queued under ``key`` and ``priority``.
        """
        level = self._levels[priority]
        level.remove(item, key)
        if not level.queued:
            del self._levels[priority]
        self._queued -= 1
        self.release(key)

    def release(self, key: Key) -> None:
        """Uncount a call of ``key`` that `pop` handed out and that has now finished.

        Raises:
            KeyError: If ``key`` holds no call.
        """
        count = self._held[key] - 1
        if count:
            self._held[key] = count
        else:
            del self._held[key]  # forgotten: memory follows live calls only

    def clear(self) -> list[T]:
        """Take every queued call out, uncounted; running calls stay counted."""
        items: list[T] = []
        for level in self._levels.values():
            for lane in (level.new, level.old):
                for key, sub in lane.items():
                    items.extend(sub)
                    for _ in sub:
                        self.release(key)
        self._levels.clear()
        self._queued = 0
        return items
