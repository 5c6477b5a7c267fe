"""Kafka plumbing for the benchmark: its own broker, fresh topics per run, pre-loading requests,
and reading back when results landed (broker LogAppendTime: one clock for every contender)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import say
from streams.kafka.stack import LocalCluster
from streams.kafka.stack.jars import default_libs_dir
from streams.kafka.topics import TopicSpec, ensure_topics
from streams.wire.codec import result_codec

KAFKA_VERSION = "4.4.0"
PARTITIONS = 4
Pair = tuple[bytes, bytes]


@dataclass
class BrokerTraits:
    """What the broker under the bench can do. Apache Kafka: everything. tansu (the GPU run's
    single-binary broker, bench/gpu/README.md): no InitProducerId (so no idempotent producer),
    and its ListOffsets reports the last batch's base offset + 1 as the end (so records are
    counted by reading them)."""

    idempotent: bool = True
    exact_end_offsets: bool = True


BROKER = BrokerTraits()


@contextlib.contextmanager
def local_kafka(heap: str = "512m") -> Iterator[LocalCluster]:
    """A one-node KRaft broker in a temp dir, stopped (and purged) however the block ends."""
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        cluster = LocalCluster.create(Path(tmp), default_libs_dir(KAFKA_VERSION), KAFKA_VERSION,
                                      size=1, heap=heap)
        try:
            seconds = cluster.up(timeout_s=120)
            say(f"Kafka {KAFKA_VERSION} up in {seconds:.1f}s at {cluster.bootstrap_servers}")
            yield cluster
        finally:
            cluster.down(purge=True)
            say("Kafka stopped")


@dataclass(frozen=True)
class Topics:
    """One scenario's requests/results/dlq/tokens topics and consumer group (unique names)."""

    bootstrap: str
    requests: str
    results: str
    dlq: str
    tokens: str
    group: str
    partitions: int = PARTITIONS
    # read_committed for workers under exactly-once delivery: what their users' readers see
    isolation: str = "read_uncommitted"

    @classmethod
    def fresh(cls, bootstrap: str, label: str, partitions: int = PARTITIONS) -> Topics:
        s = f"{label}-{uuid.uuid4().hex[:6]}"
        return cls(bootstrap, f"req-{s}", f"res-{s}", f"dlq-{s}", f"tok-{s}", f"grp-{s}",
                   partitions)

    def with_new_output(self) -> Topics:
        """Same requests, fresh results topics and consumer group: a repetition re-reads the
        pre-loaded requests from the start."""
        s = uuid.uuid4().hex[:6]
        return Topics(self.bootstrap, self.requests, f"{self.results}-{s}", f"{self.dlq}-{s}",
                      f"{self.tokens}-{s}", f"{self.group}-{s}", self.partitions,
                      self.isolation)

    def create(self) -> None:
        results_cfg = {"message.timestamp.type": "LogAppendTime"}
        specs = [TopicSpec(self.requests, self.partitions),
                 TopicSpec(self.results, self.partitions, configs=results_cfg),
                 TopicSpec(self.dlq, self.partitions), TopicSpec(self.tokens, self.partitions)]
        asyncio.run(ensure_topics(self.bootstrap, specs))


async def produce(bootstrap: str, topic: str, pairs: Sequence[Pair]) -> None:
    """Send every (key, value), acknowledged by all in-sync replicas."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=BROKER.idempotent,
                                linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        pending = []
        for key, value in pairs:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def preload(topics: Topics, pairs: Sequence[Pair]) -> None:
    started = time.perf_counter()
    asyncio.run(produce(topics.bootstrap, topics.requests, pairs))
    say(f"pre-loaded {len(pairs)} requests into {topics.requests} "
        f"({time.perf_counter() - started:.1f}s)")


async def _end_total(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> int:
    ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return int(sum(ends.values()))


async def _wait_count(bootstrap: str, topic: str, expected: int, timeout_s: float,
                      alive: Any, partitions: int, isolation: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024,
                                isolation_level=isolation)
    await consumer.start()
    if not BROKER.exact_end_offsets:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    try:
        deadline = time.monotonic() + timeout_s
        count = 0
        while time.monotonic() < deadline:
            if BROKER.exact_end_offsets:
                count = await _end_total(consumer, topic, partitions)
            else:  # the fetch itself waits up to 200 ms for records
                batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
                count += sum(len(records) for records in batch.values())
            if count >= expected or (alive is not None and not alive()):
                return count
            if BROKER.exact_end_offsets:
                await asyncio.sleep(0.2)
        return count
    finally:
        await consumer.stop()


def wait_count(bootstrap: str, topic: str, expected: int, timeout_s: float,
               alive: Any = None, partitions: int = PARTITIONS,
               isolation: str = "read_uncommitted") -> int:
    """Poll the topic's end offsets (cheap: no records read) until `expected` records are in,
    the time is up, or `alive()` says the contenders are gone. Under transactions the end
    offsets count commit markers too: this may return early, `read_results` then waits."""
    return asyncio.run(_wait_count(bootstrap, topic, expected, timeout_s, alive, partitions,
                                   isolation))


async def _read(bootstrap: str, topic: str, expected: int, decode: bool, timeout_s: float,
                partitions: int, isolation: str) -> list[tuple[float, dict[str, Any] | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024,
                                isolation_level=isolation)
    await consumer.start()
    codec = result_codec()
    out: list[tuple[float, dict[str, Any] | None]] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for records in batch.values():
                for record in records:
                    value = codec.decode(record.value or b"") if decode else None
                    out.append((float(record.timestamp), value))
    finally:
        await consumer.stop()
    return out


def read_results(bootstrap: str, topic: str, expected: int, decode: bool = False,
                 timeout_s: float = 60.0, partitions: int = PARTITIONS,
                 isolation: str = "read_uncommitted",
                 ) -> list[tuple[float, dict[str, Any] | None]]:
    """(broker append time in ms, decoded result or None) of the records on `topic`."""
    return asyncio.run(_read(bootstrap, topic, expected, decode, timeout_s, partitions,
                             isolation))
