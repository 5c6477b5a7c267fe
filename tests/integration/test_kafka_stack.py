"""The project's own Apache Kafka: produce, consume in a group, commit, resume; replication."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.kafka.stack import LocalCluster
from streams.kafka.stack.broker import NodeSpec, format_storage, free_port, write_node_files
from streams.kafka.stack.jars import default_libs_dir
from streams.kafka.topics import TopicSpec, describe_topics, ensure_topics
from tests.integration.conftest import KAFKA_VERSION


async def _produce(bootstrap: str, topic: str, keys: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sends = [await producer.send(topic, key=str(i).encode(), value=f"v{i}".encode())
                 for i in keys]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, group: str, expected: int,
                   timeout_s: float = 60.0) -> tuple[list[int], dict[int, int]]:
    """Read `expected` records in group `group`, commit, return keys and the starting positions."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    keys: list[int] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not consumer.assignment():
                await asyncio.sleep(0.05)
            starts = {tp.partition: await consumer.position(tp) for tp in consumer.assignment()}
            while len(keys) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    keys.extend(int(r.key) for r in records if r.key is not None)
        await consumer.commit()
    finally:
        await consumer.stop()
    return keys, starts


async def test_group_consumes_commits_and_resumes(kafka: LocalCluster) -> None:
    bootstrap, topic, group = kafka.bootstrap_servers, "stack.resume", "resume-group"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=4)])
    described = await describe_topics(bootstrap, [topic])
    assert len(described[0]["partitions"]) == 4

    await _produce(bootstrap, topic, range(1000))
    first, starts = await _consume(bootstrap, topic, group, expected=1000)
    assert sorted(first) == list(range(1000))
    assert set(starts.values()) == {0}

    await _produce(bootstrap, topic, range(1000, 1250))
    second, resumed_at = await _consume(bootstrap, topic, group, expected=250)
    # Only the new records: the restarted consumer began at the committed offsets.
    assert sorted(second) == list(range(1000, 1250))
    assert sum(resumed_at.values()) == 1000

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in range(4)]
    finally:
        await consumer.stop()
    assert sum(c or 0 for c in committed) == 1250


async def test_three_brokers_survive_one_sigkill(kafka_cluster3: LocalCluster) -> None:
    topic = "stack.replicated"
    await ensure_topics(kafka_cluster3.bootstrap_servers, [
        TopicSpec(topic, partitions=3, replication_factor=3,
                  configs={"min.insync.replicas": "2"})])
    described = await describe_topics(kafka_cluster3.bootstrap_servers, [topic])
    assert all(len(p["replicas"]) == 3 for p in described[0]["partitions"])
    await _produce(kafka_cluster3.bootstrap_servers, topic, range(300))

    kafka_cluster3.kill_node(1, signal.SIGKILL)
    survivors = ",".join(n.spec.bootstrap for n in kafka_cluster3.nodes[1:])
    await _produce(survivors, topic, range(300, 600))
    keys, _ = await _consume(survivors, topic, "replicated-group", expected=600, timeout_s=90)

    counts = Counter(keys)
    assert set(counts) == set(range(600))
    assert max(counts.values()) == 1  # idempotent producer: no duplicates after the failover


def test_storage_formats_with_any_cluster_id(tmp_path: Path) -> None:
    """Ids are passed as --cluster-id=<id>: even one starting with "-" (which the id generator
    no longer makes, but a stack.json from an earlier version may hold) formats."""
    node = NodeSpec(1, free_port(), free_port(), tmp_path / "node-1")
    write_node_files(node, [node])
    format_storage(default_libs_dir(KAFKA_VERSION), node, "-" + "A" * 21, "256m")
    assert "cluster.id=-AAAAAAAAAAAAAAAAAAAAA" in (node.log_dir / "meta.properties").read_text()
