"""A pure micro-batcher: no I/O, no clock; the caller passes `now_ms`, so tests are exact.

Items queue per `batch_key` (model, version, task). A queue yields a batch when it is full
(`max_batch_size` items, or queued tokens reach `max_batch_tokens`) or its oldest item has waited
`max_wait_ms` (Triton's dynamic batcher). A batch takes items by priority (higher first), then
arrival, and stops before the token budget would overflow rather than skip ahead; its first item
is always taken, so an item over the budget runs alone instead of blocking its queue. Strict
priority can starve low-priority items under sustained load; their deadlines bound that.
Items whose deadline passes while queued (`now >= deadline`, as `streams.protocol.requests`) are set
aside, never batched, and handed back by `expire()`. Removal is lazy (entries are flagged and
skipped when popped; heaps are rebuilt when mostly dead): O(log n) amortised per operation.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar


class Batchable(Protocol):
    @property
    def batch_key(self) -> Hashable: ...
    @property
    def priority(self) -> int: ...
    @property
    def deadline_ms(self) -> float | None: ...


T = TypeVar("T", bound=Batchable)


@dataclass(frozen=True)
class Batch(Generic[T]):
    key: Hashable
    items: list[T]
    tokens: list[int]
    enqueued_at_ms: list[float]  # per item, for its batch_wait timing
    formed_at_ms: float

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    def batch_wait_ms(self, index: int) -> float:
        return self.formed_at_ms - self.enqueued_at_ms[index]


@dataclass(slots=True, eq=False)
class _Entry(Generic[T]):
    item: T
    key: Hashable
    tokens: int
    enqueued_at: float
    deadline: float | None
    done: bool = False  # batched, expired or drained: skip wherever still referenced


@dataclass
class _Queue(Generic[T]):
    heap: list[tuple[int, int, _Entry[T]]] = field(default_factory=list)  # (-prio, seq, entry)
    arrivals: deque[_Entry[T]] = field(default_factory=deque)  # oldest first
    count: int = 0
    tokens: int = 0

    def oldest(self) -> _Entry[T]:
        while self.arrivals[0].done:
            self.arrivals.popleft()
        return self.arrivals[0]

    def compact_if_sparse(self) -> None:
        # Flagged entries linger until popped: behind an old low-priority item (arrivals) or
        # deep in the heap (expired). Rebuild when most of either is dead.
        if max(len(self.heap), len(self.arrivals)) > 2 * self.count + 16:
            self.heap = [e for e in self.heap if not e[2].done]
            heapq.heapify(self.heap)
            self.arrivals = deque(e for e in self.arrivals if not e.done)


class MicroBatcher(Generic[T]):
    def __init__(self, max_batch_size: int, max_wait_ms: float, max_batch_tokens: int) -> None:
        if max_batch_size < 1 or max_wait_ms < 0 or max_batch_tokens < 1:
            raise ValueError("need max_batch_size >= 1, max_wait_ms >= 0, max_batch_tokens >= 1")
        self.max_batch_size = max_batch_size
        self.max_wait_ms = max_wait_ms
        self.max_batch_tokens = max_batch_tokens
        self._queues: dict[Hashable, _Queue[T]] = {}
        self._deadlines: list[tuple[float, int, _Entry[T]]] = []
        self._expired: list[_Entry[T]] = []
        self._seq = itertools.count()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Items held: queued, plus expired ones not yet handed back by expire()."""
        return self._pending

    def add(self, item: T, tokens: int, now_ms: float) -> None:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        entry = _Entry(item, item.batch_key, tokens, now_ms, item.deadline_ms)
        seq = next(self._seq)
        queue = self._queues.get(entry.key) or self._queues.setdefault(entry.key, _Queue())
        heapq.heappush(queue.heap, (-item.priority, seq, entry))
        queue.arrivals.append(entry)
        queue.count += 1
        queue.tokens += tokens
        if entry.deadline is not None:
            heapq.heappush(self._deadlines, (entry.deadline, seq, entry))
        self._pending += 1

    def ready(self, now_ms: float, limit: int | None = None) -> list[Batch[T]]:
        """Batches due at `now_ms` (at most `limit`); never with an item past its deadline.

        A consumer that runs one batch at a time asks for `limit=1`, so items arriving while
        it computes (a higher priority among them) still compete for the next batch.
        """
        self._set_aside_expired(now_ms)
        due = [key for key, queue in self._queues.items() if self._due(queue, now_ms)]
        if limit is not None:
            # Most urgent first across the queues (tasks): the highest priority at the head
            # of a queue, then the oldest item; else one queue's backlog would hold the others.
            due.sort(key=lambda key: self._urgency(self._queues[key]))
        batches: list[Batch[T]] = []
        for key in due:
            queue = self._queues[key]
            while queue.count and self._due(queue, now_ms) and (
                    limit is None or len(batches) < limit):
                batches.append(self._take(key, queue, now_ms))
            self._tidy(key)
        return batches

    def expire(self, now_ms: float) -> list[T]:
        """Remove and return items whose deadline passed while queued: answer, never compute."""
        self._set_aside_expired(now_ms)
        expired = [entry.item for entry in self._expired]
        self._pending -= len(expired)
        self._expired = []
        return expired

    def next_deadline_ms(self) -> float | None:
        """When ready() or expire() will next have something (may be in the past); None = idle."""
        times = [entry.deadline for entry in self._expired if entry.deadline is not None]
        for queue in self._queues.values():
            oldest = queue.oldest().enqueued_at
            full = queue.count >= self.max_batch_size or queue.tokens >= self.max_batch_tokens
            times.append(oldest if full else oldest + self.max_wait_ms)
        while self._deadlines and self._deadlines[0][2].done:
            heapq.heappop(self._deadlines)
        if self._deadlines:
            times.append(self._deadlines[0][0])
        return min(times) if times else None

    def drain(self) -> list[T]:
        """Everything held, expired included (shutdown, partitions revoked); leaves it empty."""
        drained = [entry.item for entry in self._expired]
        for queue in self._queues.values():
            live = sorted((e for e in queue.heap if not e[2].done), key=lambda e: e[:2])
            drained.extend(e[2].item for e in live)
        self._queues.clear()
        self._deadlines.clear()
        self._expired = []
        self._pending = 0
        return drained

    @staticmethod
    def _urgency(queue: _Queue[T]) -> tuple[int, float]:
        while queue.heap[0][2].done:  # lazily removed entries at the top
            heapq.heappop(queue.heap)
        return (queue.heap[0][0], queue.oldest().enqueued_at)

    def _due(self, queue: _Queue[T], now_ms: float) -> bool:
        return (
            queue.count >= self.max_batch_size
            or queue.tokens >= self.max_batch_tokens
            or queue.oldest().enqueued_at + self.max_wait_ms <= now_ms
        )

    def _take(self, key: Hashable, queue: _Queue[T], now_ms: float) -> Batch[T]:
        taken: list[_Entry[T]] = []
        budget = self.max_batch_tokens
        while queue.heap and len(taken) < self.max_batch_size:
            entry = queue.heap[0][2]
            if not entry.done and taken and entry.tokens > budget:
                break  # next in order does not fit: stop rather than skip ahead
            heapq.heappop(queue.heap)
            if not entry.done:
                entry.done = True
                budget -= entry.tokens
                taken.append(entry)
        queue.count -= len(taken)
        queue.tokens -= sum(e.tokens for e in taken)
        self._pending -= len(taken)
        items, tokens = [e.item for e in taken], [e.tokens for e in taken]
        return Batch(key, items, tokens, [e.enqueued_at for e in taken], now_ms)

    def _tidy(self, key: Hashable) -> None:
        queue = self._queues[key]
        if queue.count:
            queue.compact_if_sparse()
        else:
            del self._queues[key]  # oldest() needs a live entry; keys must not pile up either

    def _set_aside_expired(self, now_ms: float) -> None:
        start = len(self._expired)
        while self._deadlines and self._deadlines[0][0] <= now_ms:
            entry = heapq.heappop(self._deadlines)[2]
            if not entry.done:
                entry.done = True
                queue = self._queues[entry.key]
                queue.count -= 1
                queue.tokens -= entry.tokens
                self._expired.append(entry)
        for key in {entry.key for entry in self._expired[start:]}:
            self._tidy(key)
        # Batched entries stay in the deadline heap until popped; rebuild when mostly dead.
        if len(self._deadlines) > 2 * self._pending + 64:
            self._deadlines = [d for d in self._deadlines if not d[2].done]
            heapq.heapify(self._deadlines)
