"""The fair queue: per-key FIFOs, priority, sparse keys first, round robin, forgetting keys."""

from __future__ import annotations

import ipaddress
import math
import random
import tracemalloc

import pytest

from loopsafe._fair import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    SPARSE_BURST,
    FairQueue,
    check_key,
    check_priority,
)


class Item:
    """A distinct, hashable stand-in for a queued call."""

    def __init__(self, key: object, n: int, priority: int = 0) -> None:
        self.key = key
        self.n = n
        self.priority = priority

    def __repr__(self) -> str:
        """Show the key and number, for assertion messages."""
        return f"Item({self.key!r}, {self.n})"


def _push(queue: FairQueue[Item], key: object, n: int, priority: int = 0) -> Item:
    item = Item(key, n, priority)
    queue.push(item, key, priority)  # type: ignore[arg-type]
    return item


def _drain(queue: FairQueue[Item]) -> list[Item]:
    out = []
    while queue:
        item = queue.pop()
        queue.release(item.key)  # type: ignore[arg-type]
        out.append(item)
    return out


def test_one_key_is_fifo() -> None:
    """With one key (or none) and one priority the order is first in, first out."""
    queue: FairQueue[Item] = FairQueue()
    items = [_push(queue, None, n) for n in range(50)]
    assert _drain(queue) == items


def test_no_key_and_interleaved_removals_stay_fifo() -> None:
    """Removing queued calls of the shared key keeps the others in arrival order."""
    queue: FairQueue[Item] = FairQueue()
    items = [_push(queue, None, n) for n in range(20)]
    for item in items[::3]:
        queue.remove(item, None, 0)
    assert _drain(queue) == [item for item in items if item.n % 3]
    assert queue.active_keys == 0


def test_backlogged_keys_take_turns() -> None:
    """Two keys with backlogs alternate, one call each per round."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(10):
        _push(queue, "a", n)
    for n in range(10):
        _push(queue, "b", n)
    order = [item.key for item in _drain(queue)]
    assert order == ["a", "b"] * 10


def test_flood_gets_one_turn_per_round() -> None:
    """A flood of 1000 queued calls does not delay 20 one-call keys by more than 20 flood calls."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(1000):
        _push(queue, "flood", n)
    for n in range(20):
        _push(queue, f"user{n}", 0)
    first = [queue.pop() for _ in range(40)]
    users = [item for item in first if item.key != "flood"]
    assert len(users) == 20
    # The flood's first call, then one flood turn after every SPARSE_BURST users.
    assert sum(1 for item in first[:25] if item.key == "flood") <= 1 + 20 // SPARSE_BURST


def test_sparse_key_overtakes_the_backlog() -> None:
    """A key arriving with one call is served before a backlogged key's next call."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(5):
        _push(queue, "flood", n)
    assert queue.pop().key == "flood"  # the flood is now on the old list
    _push(queue, "user", 0)
    assert queue.pop().key == "user"


def test_shares_are_equal_under_backlog() -> None:
    """Backlogged keys get equal numbers of dispatches whatever their backlog sizes."""
    queue: FairQueue[Item] = FairQueue()
    for key, backlog in (("a", 500), ("b", 50), ("c", 5000)):
        for n in range(backlog):
            _push(queue, key, n)
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(150):
        counts[queue.pop().key] += 1  # type: ignore[index]
    assert counts == {"a": 50, "b": 50, "c": 50}


@pytest.mark.parametrize("seed", range(5))
def test_starvation_bound_under_a_stream_of_new_keys(seed: int) -> None:
    """A queued call is dispatched within the documented bound even as new keys keep arriving."""
    rng = random.Random(seed)
    queue: FairQueue[Item] = FairQueue()
    for n in range(200):
        _push(queue, "flood", n)
    for n in range(rng.randrange(1, 30)):
        _push(queue, f"early{n}", 0)
    # Let some keys reach the old list with a backlog.
    for n in range(rng.randrange(0, 10)):
        _push(queue, f"early{n}", 1)
    level = queue._levels[0]
    target = _push(queue, "target", 0)
    position = len(level.new)  # target is last on the new list
    bound = position + math.ceil(position / SPARSE_BURST)
    served_at = None
    for dispatched in range(1, bound + 1):
        _push(queue, f"late{dispatched}", 0)  # a new key arrives before every dispatch
        if queue.pop() is target:
            served_at = dispatched
            break
    assert served_at is not None, f"target not served within {bound} dispatches"


def test_backlogged_key_is_not_starved_by_sparse_keys() -> None:
    """A key on the old list is served within (position x (SPARSE_BURST + 1)) dispatches."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(3):
        _push(queue, "old", n)
    queue.pop()  # "old" moves to the old list, position 1
    served_after = None
    for dispatched in range(1, 100):
        _push(queue, f"sparse{dispatched}", 0)
        if queue.pop().key == "old":
            served_after = dispatched
            break
    assert served_after is not None
    assert served_after <= SPARSE_BURST + 1


def test_higher_priority_first_and_lower_priority_in_order() -> None:
    """Calls of a higher priority run first; each priority keeps its own fair order."""
    queue: FairQueue[Item] = FairQueue()
    low = [_push(queue, "bot", n, priority=-1) for n in range(3)]
    normal = [_push(queue, "user", n) for n in range(2)]
    high = _push(queue, "staff", 0, priority=2)
    assert _drain(queue) == [high, *normal, *low]


def test_ahead_is_fifo_length_for_one_key() -> None:
    """For the shared key the calls ahead are the whole queue, as for a FIFO."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(7):
        _push(queue, None, n)
    assert queue.ahead(None, 0) == 7


def test_ahead_counts_one_turn_per_key_for_a_newcomer() -> None:
    """A new key is behind at most one call per queued key, plus every higher-priority call."""
    queue: FairQueue[Item] = FairQueue()
    for n in range(100):
        _push(queue, "flood", n)
    _push(queue, "other", 0)
    _push(queue, "vip", 0, priority=1)
    assert queue.ahead("new", 0) == 1 + 2  # vip, then flood and other once each
    assert queue.ahead("flood", 0) == 1 + 101  # its own backlog is ahead of it
    assert queue.ahead("new", 1) == 1 + 0 + 0  # only vip itself, at the same level


def test_held_counts_queued_and_running() -> None:
    """held() counts a key's queued and running calls; release() ends a running one."""
    queue: FairQueue[Item] = FairQueue()
    a1, _a2 = _push(queue, "a", 1), _push(queue, "a", 2)
    assert queue.held("a") == 2
    assert queue.pop() is a1
    assert queue.held("a") == 2  # one queued, one running
    queue.release("a")
    assert queue.held("a") == 1
    assert queue.active_keys == 1


def test_keys_are_forgotten_when_idle() -> None:
    """A key with nothing queued or running leaves no trace in the queue."""
    queue: FairQueue[Item] = FairQueue()
    item = _push(queue, "a", 0)
    other = _push(queue, "b", 0)
    queue.remove(item, "a", 0)
    _drain(queue)
    assert other.key == "b"
    assert queue.active_keys == 0
    assert queue.held("a") == 0
    assert not queue._levels
    assert not queue._held


def test_memory_is_bounded_under_a_flood_of_distinct_keys() -> None:
    """200,000 distinct keys passing through a queue holding at most 100 leave memory flat."""
    queue: FairQueue[Item] = FairQueue()
    queued: dict[int, Item] = {}

    def churn(first: int, count: int) -> None:
        for n in range(first, first + count):
            key = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            queued[n] = _push(queue, key, n)
            if len(queued) > 100:
                if n % 2:  # a caller gave up: its call leaves the queue
                    gone = queued.pop(next(iter(queued)))
                    queue.remove(gone, gone.key, 0)  # type: ignore[arg-type]
                else:  # a worker took one and finished it
                    done = queue.pop()
                    del queued[done.n]
                    queue.release(done.key)  # type: ignore[arg-type]

    churn(0, 1000)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    churn(1000, 200_000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert queue.active_keys == len(queue) == 100
    assert grown < 256 * 1024


def test_clear_returns_queued_and_keeps_running_counted() -> None:
    """clear() hands back every queued call; a running call stays counted until released."""
    queue: FairQueue[Item] = FairQueue()
    running = _push(queue, "a", 0)
    assert queue.pop() is running
    rest = [_push(queue, key, n, p) for n, (key, p) in enumerate([("a", 0), ("b", 1), (None, -2)])]
    assert sorted(queue.clear(), key=lambda item: item.n) == rest
    assert len(queue) == 0
    assert queue.active_keys == 1
    queue.release("a")
    assert queue.active_keys == 0


def test_pop_from_empty_raises() -> None:
    """Popping an empty queue is a bug in the caller: IndexError."""
    with pytest.raises(IndexError):
        FairQueue().pop()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(None, id="none"),
        pytest.param("203.0.113.7", id="str"),
        pytest.param(b"\xcb\x00q\x07", id="bytes"),
        pytest.param(42, id="int"),
        pytest.param(ipaddress.ip_address("2001:db8::1"), id="ipv6-address"),
        pytest.param(ipaddress.ip_network("203.0.113.0/24"), id="ipv4-network"),
        pytest.param(("203.0.113.7", "alice"), id="tuple"),
    ],
)
def test_valid_keys(key: object) -> None:
    """Addresses, networks, strings, bytes, ints and tuples of them are keys."""
    check_key(key)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(True, id="bool"),
        pytest.param(1.5, id="float"),
        pytest.param(["203.0.113.7"], id="list"),
        pytest.param((), id="empty-tuple"),
        pytest.param(("a", ("b",)), id="nested-tuple"),
        pytest.param(("a", None), id="tuple-with-none"),
        pytest.param(object(), id="object"),
        pytest.param(frozenset({"a"}), id="frozenset"),
    ],
)
def test_wrong_key_types_raise_type_error_without_the_value(key: object) -> None:
    """A key of the wrong type raises TypeError naming the type, never the value."""
    with pytest.raises(TypeError, match="key must be") as caught:
        check_key(key)
    assert "203.0.113.7" not in str(caught.value)


def test_priority_checks() -> None:
    """Priorities are ints from MIN_PRIORITY to MAX_PRIORITY."""
    for priority in range(MIN_PRIORITY, MAX_PRIORITY + 1):
        check_priority(priority)
    with pytest.raises(TypeError):
        check_priority(True)
    with pytest.raises(TypeError):
        check_priority(1.0)
    with pytest.raises(ValueError, match="priority must be between"):
        check_priority(MAX_PRIORITY + 1)
    with pytest.raises(ValueError, match="priority must be between"):
        check_priority(MIN_PRIORITY - 1)
