"""Fetcher: memory bounded in records and bytes, checked before every record (the partition is
rewound to the first record not taken), and a full request-log spool pauses fetching."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from streams.worker.fetcher import Fetcher
from streams.worker.jobs import Source
from streams.worker.observer import NullObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.options import EngineOptions

TP = TopicPartition("req", 0)


@dataclass
class Record:
    offset: int
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()  # as aiokafka's ConsumerRecord has them


@dataclass
class Consumer:
    paused: set[TopicPartition] = field(default_factory=set)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


class Admitted:
    def __init__(self) -> None:
        self.sources: list[Source] = []

    async def admit(self, source: Source, size: int) -> None:
        self.sources.append(source)


class Spool(NullObserver):
    full: str | None = None

    def backpressure(self) -> str | None:
        return self.full


def rig(max_bytes: int, max_records: int = 4096, observer: Any = None) -> tuple[
        Fetcher, Consumer, Admitted, OffsetTracker[TopicPartition]]:
    consumer, admitted, tracker = Consumer(), Admitted(), OffsetTracker[TopicPartition]()
    options = EngineOptions("w", "req", "res", "dlq", "tok", 8, 1.0, 100,
                            max_in_flight=max_records, max_in_flight_bytes=max_bytes)
    fetcher = Fetcher(consumer, tracker, admitted, options,  # type: ignore[arg-type]
                      observer or NullObserver(), {TP})
    return fetcher, consumer, admitted, tracker


async def test_the_byte_cap_stops_mid_fetch_and_rewinds_to_the_first_record_not_taken() -> None:
    fetcher, consumer, admitted, tracker = rig(max_bytes=1000)
    generation = tracker.assign(TP)
    records = [Record(offset, b"x" * 300) for offset in range(10)]
    await fetcher._take(TP, records, generation)  # type: ignore[arg-type]
    assert [s.offset for s in admitted.sources] == [0, 1, 2, 3]  # 1,200 bytes >= the cap
    assert consumer.seeks == [(TP, 4)] and TP in consumer.paused
    assert tracker.in_flight_bytes() == 1200
    for offset in range(4):
        tracker.finished(TP, generation, offset)
    fetcher.hold_back()
    assert TP not in consumer.paused  # room again: fetching resumes


async def test_headers_count_toward_the_byte_cap_and_stay_with_the_record() -> None:
    fetcher, consumer, admitted, tracker = rig(max_bytes=1000)
    generation = tracker.assign(TP)
    headers = (("traceparent", b"t" * 55), ("junk", b"j" * 430))  # 500 bytes with the names
    records = [Record(offset, b"x" * 100, headers=headers) for offset in range(5)]
    await fetcher._take(TP, records, generation)  # type: ignore[arg-type]
    assert [s.offset for s in admitted.sources] == [0, 1]  # 1,200 bytes >= the cap
    assert tracker.in_flight_bytes() == 1200 and consumer.seeks == [(TP, 2)]
    assert admitted.sources[0].headers == headers  # for the trace context and the DLQ copy


async def test_a_record_larger_than_the_cap_is_still_taken_when_nothing_is_in_flight() -> None:
    fetcher, consumer, admitted, tracker = rig(max_bytes=1000)
    generation = tracker.assign(TP)
    await fetcher._take(TP, [Record(0, b"y" * 5000)], generation)  # type: ignore[arg-type]
    assert [s.offset for s in admitted.sources] == [0] and consumer.seeks == []


async def test_the_record_cap_also_applies_before_every_record() -> None:
    fetcher, consumer, admitted, tracker = rig(max_bytes=1 << 30, max_records=3)
    generation = tracker.assign(TP)
    await fetcher._take(TP, [Record(o, b"z") for o in range(5)], generation)  # type: ignore[arg-type]
    assert len(admitted.sources) == 3 and consumer.seeks == [(TP, 3)]


async def test_records_of_an_older_assignment_are_not_taken() -> None:
    fetcher, _, admitted, tracker = rig(max_bytes=1 << 30)
    old = tracker.assign(TP)
    tracker.assign(TP)  # revoked and assigned again while the fetch was in flight
    await fetcher._take(TP, [Record(0, b"z")], old)  # type: ignore[arg-type]
    assert admitted.sources == []


def test_a_full_spool_pauses_fetching_until_it_drains() -> None:
    spool = Spool()
    fetcher, consumer, _, _ = rig(max_bytes=1 << 30, observer=spool)
    spool.full = "request-log spool holds 600 MiB"
    fetcher.hold_back()
    assert TP in consumer.paused and fetcher.paused_for == spool.full
    spool.full = None
    fetcher.hold_back()
    assert TP not in consumer.paused and fetcher.paused_for is None


class SlowAdmission(Admitted):
    """Admission that blocks the loop like a hostile input near the character cap does."""

    def __init__(self, block_s: float) -> None:
        super().__init__()
        self.block_s = block_s

    async def admit(self, source: Source, size: int) -> None:
        time.sleep(self.block_s)  # synchronous on purpose: token counting does not await
        self.sources.append(source)


def slow_rig() -> tuple[Fetcher, OffsetTracker[TopicPartition], SlowAdmission]:
    tracker, admitted = OffsetTracker[TopicPartition](), SlowAdmission(block_s=0.03)
    options = EngineOptions("w", "req", "res", "dlq", "tok", 8, 1.0, 100)
    fetcher = Fetcher(Consumer(), tracker, admitted, options,  # type: ignore[arg-type]
                      NullObserver(), {TP})
    return fetcher, tracker, admitted


async def test_slow_admission_still_lets_heartbeats_run_between_records() -> None:
    fetcher, tracker, admitted = slow_rig()
    generation = tracker.assign(TP)
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0)

    beating = asyncio.ensure_future(heartbeat())
    await asyncio.sleep(0)
    beats.clear()
    await fetcher._take(TP, [Record(o, b"x") for o in range(20)], generation)  # type: ignore[arg-type]
    beating.cancel()
    assert len(admitted.sources) == 20
    # 20 records x 30 ms = 0.6 s of blocking: without yields the heartbeat never runs meanwhile.
    assert len(beats) >= 10
    assert max(b - a for a, b in itertools.pairwise(beats)) < 0.5


async def test_a_revocation_during_a_yield_stops_taking_the_partition() -> None:
    fetcher, tracker, admitted = slow_rig()
    generation = tracker.assign(TP)

    async def revoke_soon() -> None:
        await asyncio.sleep(0)
        tracker.forget([TP])

    revoking = asyncio.ensure_future(revoke_soon())
    await fetcher._take(TP, [Record(o, b"x") for o in range(20)], generation)  # type: ignore[arg-type]
    await revoking
    assert 0 < len(admitted.sources) < 20  # taken until the first yield after the revocation
