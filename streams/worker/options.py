"""Engine knobs, derived from `Settings` in one place."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from streams.config import Settings
from streams.kafka.options import (
    consumer_options,
    producer_options,
    transactional_producer_options,
)

SESSION_TIMEOUT_MS = 10_000
REBALANCE_MARGIN_S = 30.0
FETCH_MAX_PARTITION_BYTES = 4 * 1024 * 1024
# A dead letter is the fetched record plus error headers: room for both (see topics.py too).
PRODUCE_MAX_BYTES = FETCH_MAX_PARTITION_BYTES + 64 * 1024


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
    max_in_flight_bytes: int = 256 * 1024 * 1024
    max_fetch_records: int = 1000
    fetch_timeout_ms: int = 100
    commit_interval_ms: int = 100
    exactly_once: bool = False  # results, dead letters and offsets in per-partition transactions
    consumer_group: str = "streamserve-workers"
    # Per input partition: <group>.<topic>.<partition> (the transactional.id, which fences)
    transactional_kwargs: dict[str, Any] = field(default_factory=dict)
    reply_topic_prefix: str = "inference.replies."
    max_record_bytes: int = PRODUCE_MAX_BYTES  # the producer's max_request_size
    revoke_ack_timeout_s: float = 10.0  # acknowledgements awaited at a hand-over, at most
    shutdown_grace_s: float = 30.0  # computing work awaited at a graceful stop, at most
    tracing: bool = False  # spans and trace headers (streams.tracing)

    @classmethod
    def from_settings(cls, settings: Settings, longest_batch_s: float = 0.0) -> EngineOptions:
        """`longest_batch_s`: the longest batch the served models allow (their batch timeout);
        the rebalance timeout covers it unless the settings choose one."""
        worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        consumer = consumer_options(settings, settings.consumer_group)
        rebalance_ms = settings.rebalance_timeout_ms or int(
            max(SESSION_TIMEOUT_MS, (longest_batch_s + REBALANCE_MARGIN_S) * 1000))
        consumer.update(
            # Static membership: a worker restarted under the same id gets its partitions
            # back without a rebalance of the whole group.
            group_instance_id=settings.worker_id if settings.static_membership else None,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=2_000,
            # aiokafka defaults the rebalance timeout to the session timeout (10 s): a member
            # still handing over after that is evicted and its rejoin starts another rebalance.
            rebalance_timeout_ms=rebalance_ms,
            # A long generation batch must not count as a stalled consumer.
            max_poll_interval_ms=max(600_000, rebalance_ms),
            max_partition_fetch_bytes=FETCH_MAX_PARTITION_BYTES,
        )
        producer = producer_options(settings)
        # Whatever we fetch, its dead letter (the record plus headers) must be producible.
        producer["max_request_size"] = PRODUCE_MAX_BYTES
        transactional = {**transactional_producer_options(settings, ""),
                         "max_request_size": PRODUCE_MAX_BYTES}
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
            producer_kwargs=producer,
            max_in_flight=max(4 * settings.max_batch_size, 4096),
            max_in_flight_bytes=settings.max_in_flight_bytes,
            reply_topic_prefix=settings.reply_topic_prefix,
            commit_interval_ms=settings.commit_interval_ms,
            exactly_once=settings.delivery == "exactly_once",
            consumer_group=settings.consumer_group,
            transactional_kwargs=transactional,
            tracing=settings.tracing,
        )

    def transactional_id(self, topic: str, partition: int) -> str:
        """One transactional id per input partition: the next owner's producer fences ours."""
        return f"{self.consumer_group}.{topic}.{partition}"
