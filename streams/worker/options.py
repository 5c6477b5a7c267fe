"""Engine knobs, derived from `Settings` in one place."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from streams.config import Settings
from streams.kafka_options import consumer_options, producer_options


@dataclass(frozen=True)
class EngineOptions:
    worker_id: str
    requests_topic: str
    results_topic: str
    dlq_topic: str
    tokens_topic: str
    max_batch_size: int
    max_wait_ms: float
    max_batch_tokens: int
    consumer_kwargs: dict[str, Any] = field(default_factory=dict)
    producer_kwargs: dict[str, Any] = field(default_factory=dict)
    max_in_flight: int = 4096
    max_fetch_records: int = 1000
    fetch_timeout_ms: int = 100
    commit_interval_ms: int = 200

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        consumer = consumer_options(settings, settings.consumer_group)
        consumer.update(
            # Static membership: a worker restarted under the same id gets its partitions
            # back without a rebalance of the whole group.
            group_instance_id=settings.worker_id if settings.static_membership else None,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            # A long generation batch must not count as a stalled consumer.
            max_poll_interval_ms=600_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        return cls(
            worker_id=worker_id,
            requests_topic=settings.requests_topic,
            results_topic=settings.results_topic,
            dlq_topic=settings.dlq_topic,
            tokens_topic=settings.tokens_topic,
            max_batch_size=settings.max_batch_size,
            max_wait_ms=settings.max_wait_ms,
            max_batch_tokens=settings.max_batch_tokens,
            consumer_kwargs=consumer,
            producer_kwargs=producer_options(settings),
            max_in_flight=max(4 * settings.max_batch_size, 4096),
        )
