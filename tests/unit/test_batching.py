from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest

from streams.policy.batching import MicroBatcher


@dataclass(frozen=True)
class Item:
    name: str
    key: str = "m"
    priority: int = 0
    deadline_ms: float | None = None

    @property
    def batch_key(self) -> str:
        return self.key


def names(items: list[Item]) -> list[str]:
    return [i.name for i in items]


def batcher(size: int = 4, wait: float = 10, tokens: int = 1000) -> MicroBatcher[Item]:
    return MicroBatcher(max_batch_size=size, max_wait_ms=wait, max_batch_tokens=tokens)


def test_full_batch_is_ready_at_once() -> None:
    b = batcher(size=3)
    for i in range(7):
        b.add(Item(f"i{i}"), tokens=1, now_ms=0)
    batches = b.ready(now_ms=0)
    assert [names(x.items) for x in batches] == [["i0", "i1", "i2"], ["i3", "i4", "i5"]]
    assert b.pending == 1
    assert b.ready(now_ms=9.9) == []
    assert [names(x.items) for x in b.ready(now_ms=10)] == [["i6"]]
    assert b.pending == 0 and b.next_deadline_ms() is None


def test_partial_batch_waits_for_its_oldest_item() -> None:
    b = batcher(wait=10)
    b.add(Item("a"), 1, now_ms=100)
    b.add(Item("b"), 1, now_ms=105)
    assert b.next_deadline_ms() == 110
    assert b.ready(109) == []
    (batch,) = b.ready(110)
    assert names(batch.items) == ["a", "b"]
    assert batch.enqueued_at_ms == [100, 105] and batch.formed_at_ms == 110
    assert [batch.batch_wait_ms(i) for i in range(2)] == [10, 5]


def test_zero_wait_sends_immediately() -> None:
    b = batcher(wait=0)
    b.add(Item("a"), 1, now_ms=5)
    assert [names(x.items) for x in b.ready(5)] == [["a"]]


def test_token_budget_fills_a_batch() -> None:
    b = batcher(size=10, tokens=100)
    for name, tokens in [("a", 40), ("b", 40), ("c", 30), ("d", 10)]:
        b.add(Item(name), tokens, now_ms=0)
    (batch,) = b.ready(0)  # 120 tokens queued >= budget: a full batch exists
    assert names(batch.items) == ["a", "b"] and batch.total_tokens == 80  # c would exceed 100
    assert b.ready(0) == []  # c+d = 40 tokens: waits for max_wait
    assert names(b.ready(10)[0].items) == ["c", "d"]


def test_item_over_the_token_budget_runs_alone() -> None:
    b = batcher(size=10, tokens=100)
    b.add(Item("big"), 500, now_ms=0)
    b.add(Item("small"), 1, now_ms=0)
    assert b.next_deadline_ms() == 0  # due now, not after max_wait
    (batch,) = b.ready(0)
    assert names(batch.items) == ["big"] and batch.tokens == [500]
    assert b.pending == 1


def test_higher_priority_first_then_fifo() -> None:
    b = batcher(size=3)
    for name, prio in [("l1", 0), ("h1", 5), ("l2", 0), ("m1", 1), ("h2", 5)]:
        b.add(Item(name, priority=prio), 1, now_ms=0)
    assert [names(x.items) for x in b.ready(0)] == [["h1", "h2", "m1"]]
    assert [names(x.items) for x in b.ready(10)] == [["l1", "l2"]]


def test_low_priority_oldest_item_still_flushes_on_timeout() -> None:
    b = batcher(size=2, wait=10)
    b.add(Item("old-low", priority=0), 1, now_ms=0)
    b.add(Item("new-high", priority=9), 1, now_ms=9)
    # Timeout of the oldest flushes everything due, priority order inside.
    assert names(b.ready(10)[0].items) == ["new-high", "old-low"]


def test_queues_are_per_key() -> None:
    b = batcher(size=2)
    b.add(Item("a1", key="a"), 1, 0)
    b.add(Item("b1", key="b"), 1, 0)
    b.add(Item("a2", key="a"), 1, 1)
    (batch,) = b.ready(1)
    assert batch.key == "a" and names(batch.items) == ["a1", "a2"]
    assert b.next_deadline_ms() == 10  # b1's max_wait


def test_expired_items_are_never_batched() -> None:
    b = batcher(size=4, wait=100)
    b.add(Item("late", deadline_ms=50), 1, now_ms=0)
    b.add(Item("ok", deadline_ms=500), 1, now_ms=0)
    b.add(Item("none"), 1, now_ms=0)
    assert b.next_deadline_ms() == 50  # before the batch's max_wait (100)
    assert b.ready(49) == []
    # ready() past a deadline sets the item aside for expire(): no batch ever holds it.
    assert b.ready(60) == []
    assert b.pending == 3 and b.next_deadline_ms() == 50
    assert names(b.expire(60)) == ["late"] and b.pending == 2
    assert names(b.ready(100)[0].items) == ["ok", "none"]
    b.add(Item("late2", deadline_ms=130), 1, now_ms=100)
    assert b.next_deadline_ms() == 130
    assert b.expire(129) == []
    assert b.ready(200) == []
    assert names(b.expire(200)) == ["late2"]
    assert b.pending == 0 and b.expire(1000) == []


def test_expire_at_exactly_the_deadline() -> None:
    b = batcher()
    b.add(Item("x", deadline_ms=20), 1, now_ms=0)
    assert b.next_deadline_ms() == 10
    assert b.expire(19) == [] and names(b.expire(20)) == ["x"]
    assert b.next_deadline_ms() is None and b.ready(1000) == []


def test_drain_returns_everything_in_order_and_empties() -> None:
    b = batcher(size=10)
    b.add(Item("a"), 1, 0)
    b.add(Item("b", priority=2), 1, 0)
    b.add(Item("c", key="other"), 1, 0)
    b.add(Item("d", deadline_ms=1), 1, 0)
    b.ready(1)  # d expires into the hand-back list
    assert names(b.drain()) == ["d", "b", "a", "c"]
    assert b.pending == 0 and b.ready(10**9) == [] and b.expire(10**9) == []
    assert b.next_deadline_ms() is None


def test_many_expiries_keep_internal_heaps_small() -> None:
    b = batcher(size=1000, wait=10**6)
    for i in range(5000):
        b.add(Item(f"i{i}", deadline_ms=i if i % 2 else None), 1, now_ms=0)
    assert len(b.expire(10**6)) == 2500 and b.pending == 2500
    queue = b._queues["m"]
    assert len(queue.heap) <= 2 * queue.count + 16
    assert sum(len(x.items) for x in b.ready(10**6)) == 2500


def test_invalid_configuration_and_tokens() -> None:
    with pytest.raises(ValueError):
        MicroBatcher[Item](max_batch_size=0, max_wait_ms=1, max_batch_tokens=1)
    with pytest.raises(ValueError):
        batcher().add(Item("x"), -1, 0)


def test_pure_core_imports_no_io_frameworks() -> None:
    code = (
        "import sys, streams.wire.codec, streams.policy.batching, streams.protocol.requests\n"
        "import streams.protocol.results\n"
        "bad = {'faust', 'aiokafka', 'clickhouse_connect', 'torch'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ready_with_a_limit_leaves_the_rest_queued_for_later_priorities() -> None:
    batcher: MicroBatcher[Item] = MicroBatcher(2, max_wait_ms=0, max_batch_tokens=100)
    for i in range(6):
        batcher.add(Item(f"low{i}"), tokens=1, now_ms=0)
    first = batcher.ready(now_ms=1, limit=1)
    assert [len(b.items) for b in first] == [2]
    batcher.add(Item("urgent", priority=5), tokens=1, now_ms=2)
    second = batcher.ready(now_ms=3, limit=1)
    assert second[0].items[0].name == "urgent"
    assert batcher.pending == 3


def test_ready_with_a_limit_takes_the_most_urgent_queue_first() -> None:
    """A late high-priority item of one task beats a backlog of another task's batches."""

    @dataclass(frozen=True)
    class Tasked:
        name: str
        batch_key: str
        priority: int = 0
        deadline_ms: float | None = None

    b: MicroBatcher[Tasked] = MicroBatcher(max_batch_size=2, max_wait_ms=0, max_batch_tokens=100)
    for i in range(50):
        b.add(Tasked(f"e{i}", "embed"), 1, now_ms=0)
    b.add(Tasked("urgent", "classify", priority=100), 1, now_ms=10)
    (first,) = b.ready(now_ms=20, limit=1)
    assert [item.name for item in first.items] == ["urgent"]
    (second,) = b.ready(now_ms=20, limit=1)
    assert [item.name for item in second.items] == ["e0", "e1"]  # then the oldest backlog
