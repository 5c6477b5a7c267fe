"""A record in flight: where it came from (for commits and the DLQ) and what it asks for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka import TopicPartition

from streams.protocol.fit import Headers
from streams.protocol.requests import WorkItem

if TYPE_CHECKING:
    from streams.tracing.spans import RequestTrace


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka coordinates of one consumed record, and the assignment it was fetched under."""

    tp: TopicPartition
    offset: int
    consumed_at_ms: float  # epoch (request log, kafka_wait)
    generation: int = 0  # see OffsetTracker: stale generations are ignored
    key: bytes | None = None  # the original record, kept for its dead letter
    value: bytes | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()  # as fetched: trace context, DLQ copy


@dataclass(frozen=True, slots=True)
class Job:
    """A valid request queued for its model lane (the batcher's item).

    Times are monotonic ms (`streams.clock`): `enqueued_at_ms` for batch waits, `deadline_ms`
    is the request's epoch deadline moved onto the monotonic timeline at admission."""

    item: WorkItem
    source: Source
    tokens: int
    enqueued_at_ms: float
    deadline_ms: float | None = None
    reply_topic: str | None = None  # checked against the allow-list; None = results topic
    trace: RequestTrace | None = None  # its request span; None when tracing is off

    @property
    def trace_headers(self) -> Headers | None:
        """The headers that carry its span's context on what it produces; None: tracing off."""
        return None if self.trace is None else self.trace.headers

    @property
    def batch_key(self) -> str:
        # Each model version has its own lane and batcher; inside it, batches are per task.
        return self.item.task

    @property
    def priority(self) -> int:
        return self.item.priority
