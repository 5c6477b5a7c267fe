"""A record in flight: where it came from (for commits and the DLQ) and what it asks for."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from aiokafka import TopicPartition

from streams.requests import WorkItem


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka coordinates of one consumed record."""

    tp: TopicPartition
    offset: int
    consumed_at_ms: float


@dataclass(frozen=True, slots=True)
class Job:
    """A valid request queued for its model lane (the batcher's item)."""

    item: WorkItem
    source: Source
    tokens: int
    enqueued_at_ms: float

    @property
    def batch_key(self) -> Hashable:
        # Each model version has its own lane and batcher; inside it, batches are per task.
        return self.item.task

    @property
    def priority(self) -> int:
        return self.item.priority

    @property
    def deadline_ms(self) -> float | None:
        return self.item.deadline_ms
