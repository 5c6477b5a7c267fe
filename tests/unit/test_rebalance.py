"""on_partitions_revoked: bounded, drops the revoked partitions' queue, commits what finished."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition

from streams.wire.codec import result_codec, token_codec
from streams.worker.emitter import Emitter
from streams.worker.observer import NullObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import Topics
from streams.worker.rebalance import Committer, Rebalancer
from tests.unit.kafka_doubles import FakeProducer
from tests.unit.lane_harness import TP0, TP1, job, static_rig, wait_for


class RecordingConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


def rebalancer(lanes: dict[Any, Any]) -> tuple[Rebalancer, OffsetTracker[TopicPartition],
                                                 set[TopicPartition], RecordingConsumer]:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    assigned: set[TopicPartition] = set()
    consumer = RecordingConsumer()
    emitter = Emitter(FakeProducer(), result_codec(), tracker, Topics("res", "dlq", "tok"),
                      lambda e: None, token_codec(), max_record_bytes=1 << 20,
                      rejected_for=lambda r, c, m: r)
    committer = Committer(consumer, tracker, assigned)  # type: ignore[arg-type]
    listener = Rebalancer(tracker, assigned, lanes, emitter, committer, NullObserver(), "w1",
                          ack_timeout_s=1.0, on_assigned=lambda: None)
    return listener, tracker, assigned, consumer


async def test_revocation_drops_queued_jobs_commits_finished_and_forgets() -> None:
    rig = static_rig(wait_ms=60_000.0)  # nothing forms a batch: all stays queued
    listener, tracker, assigned, consumer = rebalancer({("m", "1"): rig.lane})
    await listener.on_partitions_assigned({TP0, TP1})
    g0, g1 = tracker.generation(TP0), tracker.generation(TP1)
    assert g0 is not None and g1 is not None
    for offset in (0, 1, 2):
        tracker.started(TP1, g1, offset)
    tracker.finished(TP1, g1, 0)
    tracker.started(TP0, g0, 7)
    rig.lane.add(job("keep", tp=TP0))
    rig.lane.add(job("drop", tp=TP1))
    await listener.on_partitions_revoked({TP1})
    assert consumer.commits == [{TP1: 1}]  # finished up to offset 0: position 1
    assert assigned == {TP0} and tracker.generation(TP1) is None
    assert [j.item.request_id for j in rig.lane.remove(lambda j: True)] == []
    assert rig.lane.batcher.pending == 1 and listener.revocations == 1


async def test_revocation_does_not_wait_for_a_long_batch() -> None:
    rig = static_rig(batch=2, wait_ms=0.0, fake_delay_s=2.0)
    listener, _, _, _ = rebalancer({("m", "1"): rig.lane})
    await listener.on_partitions_assigned({TP1})
    rig.lane.start()
    rig.lane.add(job("long", tp=TP1))
    await wait_for(lambda: rig.lane.busy)
    started = time.monotonic()
    await listener.on_partitions_revoked({TP1})
    assert time.monotonic() - started < 0.5 and listener.last_revocation_s < 0.5
    await rig.lane.stop()


async def test_a_reassigned_partition_starts_a_new_generation() -> None:
    listener, tracker, assigned, _ = rebalancer({})
    await listener.on_partitions_assigned({TP0})
    first = tracker.generation(TP0)
    await listener.on_partitions_revoked({TP0})
    await listener.on_partitions_assigned({TP0})
    assert tracker.generation(TP0) not in (None, first) and assigned == {TP0}
    await asyncio.sleep(0)
