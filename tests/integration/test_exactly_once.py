"""Exactly-once delivery in process: answers and offsets in per-partition transactions, read
back by read_committed readers once each; aborted and fenced transactions stay invisible."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from aiokafka import AIOKafkaConsumer

from streams.client import new_request
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from streams.wire.codec import result_codec
from tests.integration.fault_harness import send_requests
from tests.integration.pipeline_harness import (
    client_for,
    fake_models,
    pipeline_settings,
    running_workers,
)


async def read_all(settings: Settings, isolation: str, expected: int,
                   timeout_s: float = 30.0) -> Counter[str]:
    consumer = AIOKafkaConsumer(settings.results_topic, group_id=None,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", isolation_level=isolation)
    await consumer.start()
    seen: Counter[str] = Counter()
    codec = result_codec()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and sum(seen.values()) < expected:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for record in records:
                    seen[codec.decode(record.value or b"")["request_id"]] += 1
        await asyncio.sleep(1.0)
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                seen[codec.decode(record.value or b"")["request_id"]] += 1
    finally:
        await consumer.stop()
    return seen


async def test_two_workers_answer_each_request_once_in_transactions(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, delivery="exactly_once")
    async with running_workers(settings, 2, [fake_models(), fake_models()]) as workers, \
            client_for(settings) as client:
        requests = [new_request("encoder", "embed", text=f"doc {i}", request_id=f"r{i}")
                    for i in range(300)]
        results = await client.infer_many(requests, timeout_s=90)
        committed = sum(e.transactions.committed for e in workers.engines
                        if e.transactions is not None)
    assert Counter(r["status"] for r in results) == {"ok": 300}
    seen = await read_all(settings, "read_committed", 300)
    assert set(seen) == {f"r{i}" for i in range(300)} and set(seen.values()) == {1}
    assert committed > 0


async def test_requests_waiting_before_the_first_worker_are_all_answered(
        kafka: LocalCluster) -> None:
    """A new group has no committed offset: the first owner must start at the beginning, not
    skip what was fetched while it fenced and rewound (a bug this test caught)."""
    settings = pipeline_settings(kafka, delivery="exactly_once")
    await ensure_topics(settings, service_topics(settings))
    requests = [new_request("encoder", "embed", text=f"early {i}", request_id=f"e{i}")
                for i in range(120)]
    await send_requests(settings, requests)
    async with running_workers(settings, 2, [fake_models(), fake_models()]):
        seen = await read_all(settings, "read_committed", 120, timeout_s=60)
    assert set(seen) == {r["request_id"] for r in requests} and set(seen.values()) == {1}
