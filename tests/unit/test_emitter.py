"""Emitter: a record is finished only when all it produced is acknowledged, and no failure of a
single derived record stops the worker or drops an outcome silently."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from models.base import ModelOutput
from streams.errors import InvalidRequest
from streams.protocol.dead_letters import dead_letter, headers_dict
from streams.protocol.fit import CUT_HEADER
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, ok_result, rejected_result
from streams.wire.codec import result_codec, token_codec
from streams.worker.emitter import Emitter
from streams.worker.jobs import Source
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import Topics
from tests.unit.kafka_doubles import FakeProducer

TP = TopicPartition("req", 0)
TOPICS = Topics("results", "dlq", "tokens")


class Harness:
    def __init__(self, producer: FakeProducer) -> None:
        self.producer = producer
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.generation = self.tracker.assign(TP)
        self.fatal: list[BaseException] = []
        self.refused: list[str] = []
        self.reduced: list[str] = []
        self.published: list[dict[str, Any] | None] = []
        self.emitter = Emitter(producer, result_codec(), self.tracker, TOPICS, self.fatal.append,
                               token_codec(), max_record_bytes=producer.max_request_size,
                               rejected_for=rejected_for, on_refused=self.refused.append,
                               on_reduced=self.reduced.append)

    def source(self, offset: int, value: bytes | None = b"raw", key: bytes | None = b"k"
               ) -> Source:
        self.tracker.started(TP, self.generation, offset, len(value or b""))
        return Source(TP, offset, 0.0, self.generation, key, value)

    async def settled(self) -> None:
        await self.emitter.wait_acknowledged()
        await asyncio.sleep(0)


def header(request_id: str = "r1") -> RequestHeader:
    return RequestHeader(request_id, "m", None, 1_000, 1_010.0)


def an_ok(request_id: str = "r1") -> dict[str, Any]:
    return ok_result(header(request_id), ModelOutput(text="hi"), model_version="1",
                     worker_id="w", completed_at_ms=1_100, timings=Timings(), batch_size=1)


def rejected_for(result: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    return rejected_result(header(result["request_id"]), InvalidRequest(code, message),
                           worker_id="w", completed_at_ms=1_200)


def letter_for(source: Source, code: str = "corrupt") -> Any:
    return dead_letter(key=source.key, value=source.value, topic="req", partition=0,
                       offset=source.offset, error_class="DecodeError", message="bad",
                       code=code)


async def test_a_result_finishes_its_record_once_acknowledged() -> None:
    h = Harness(FakeProducer())
    src = h.source(5)
    await h.emitter.result(an_ok(), src, on_sent=h.published.append)
    assert h.tracker.in_flight() == 1  # sent, not yet acknowledged
    await h.settled()
    assert h.tracker.in_flight() == 0 and h.tracker.to_commit() == {TP: 6}
    assert h.producer.topics() == ["results"] and h.published[0]["request_id"] == "r1"


async def test_a_failed_acknowledgement_is_fatal_and_leaves_the_record_uncommitted() -> None:
    producer = FakeProducer()
    producer.on("results", "fail", KafkaTimeoutError())
    h = Harness(producer)
    await h.emitter.result(an_ok(), h.source(5), on_sent=h.published.append)
    await h.settled()
    assert isinstance(h.fatal[0], KafkaTimeoutError)
    assert h.tracker.to_commit() == {TP: 5} and h.published == []


async def test_a_dead_letter_too_large_for_the_producer_goes_out_cut_with_a_header() -> None:
    h = Harness(FakeProducer(max_request_size=64 * 1024))
    big = b"x" * 200_000
    src = h.source(1, value=big, key=b"k" * 10_000)
    result = rejected_result(header(), InvalidRequest("input_too_long", "long"), worker_id="w",
                             completed_at_ms=1_100)
    await h.emitter.dead_letter(letter_for(src), src, result, h.published.append)
    await h.settled()
    assert h.fatal == [] and h.tracker.in_flight() == 0
    dlq = next(r for r in h.producer.sent if r.topic == "dlq")
    assert len(dlq.value or b"") < len(big) and big.startswith(dlq.value or b"")
    cut = dict(dlq.headers)[CUT_HEADER].decode()
    assert cut.startswith("key:10000->256,value:200000->")
    assert headers_dict(dlq.headers)["offset"] == "1"  # coordinates always survive


async def test_a_dead_letter_the_broker_refuses_is_retried_smaller_until_it_fits() -> None:
    producer = FakeProducer()
    # The topic takes at most 1,000 bytes (say max.message.bytes): the broker says so via the
    # acknowledgement, not from send().
    producer.on("dlq", "fail", MessageSizeTooLargeError(),
                when=lambda r: len(r.value or b"") > 1_000)
    h = Harness(producer)
    src = h.source(3, value=b"y" * 500_000)
    await h.emitter.dead_letter(letter_for(src), src)
    await h.settled()
    assert h.fatal == [] and h.tracker.in_flight() == 0 and h.reduced == ["dlq"]
    dlq = producer.sent[-1]
    assert dlq.value == b"" and b"value:500000->0" in dict(dlq.headers)[CUT_HEADER]
    assert [len(r.value or b"") for r in producer.attempts] == [500_000, 65_536, 0]


async def test_a_tombstone_request_still_gets_a_dead_letter() -> None:
    h = Harness(FakeProducer())
    src = h.source(9, value=None, key=None)
    await h.emitter.dead_letter(letter_for(src, "empty"), src)
    await h.settled()
    assert h.fatal == [] and h.producer.sent[0].value == b"" and h.tracker.in_flight() == 0


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError(),
                                   UnknownTopicOrPartitionError()])
@pytest.mark.parametrize("where", ["raise", "fail"])
async def test_a_refusing_reply_topic_turns_into_a_rejected_result_and_a_dead_letter(
        error: BaseException, where: str) -> None:
    producer = FakeProducer()
    producer.on("inference.replies.t1", where, error)
    h = Harness(producer)
    src = h.source(4)
    await h.emitter.result(an_ok(), src, "inference.replies.t1", on_sent=h.published.append)
    await h.settled()
    assert h.fatal == [] and h.tracker.in_flight() == 0
    assert sorted(producer.topics()) == ["dlq", "results"]
    assert h.refused == ["inference.replies.t1"]
    answered = h.published[0]
    assert answered is not None and answered["status"] == "rejected"
    assert answered["error"]["code"] == "reply_topic_unavailable"
    dlq = next(r for r in producer.sent if r.topic == "dlq")
    assert dlq.value == b"raw" and headers_dict(dlq.headers)["code"] == "reply_topic_unavailable"


async def test_our_own_results_topic_refusing_us_is_fatal() -> None:
    producer = FakeProducer()
    producer.on("results", "raise", TopicAuthorizationFailedError())
    h = Harness(producer)
    await h.emitter.result(an_ok(), h.source(2))
    await h.settled()
    assert isinstance(h.fatal[0], TopicAuthorizationFailedError)
    assert h.tracker.to_commit() == {TP: 2}


async def test_a_rejected_result_echoing_a_huge_id_is_cut_to_fit() -> None:
    h = Harness(FakeProducer())
    src = h.source(1)
    huge = "i" * 100_000
    result = rejected_result(RequestHeader(huge, "m" * 5_000, None, 1, 2.0,
                                           attributes={"a": "b" * 10_000}),
                             InvalidRequest("invalid_request_id", "too long"), worker_id="w",
                             completed_at_ms=3)
    await h.emitter.dead_letter(letter_for(src), src, result, h.published.append)
    await h.settled()
    sent = next(r for r in h.producer.sent if r.topic == "results")
    decoded = result_codec().decode(sent.value or b"")
    assert len(decoded["request_id"]) == 128 and decoded["attributes"] == {}
    assert sent.key == decoded["request_id"].encode()
    note = dict(sent.headers)[CUT_HEADER].decode()
    assert "request_id:100000->128" in note and "model:5000->128" in note
    assert "attributes:" in note


async def test_a_chunk_that_cannot_be_sent_is_skipped_not_fatal() -> None:
    producer = FakeProducer()
    producer.on("tokens", "raise", KafkaTimeoutError())
    h = Harness(producer)
    chunk = {"request_id": "r1", "model": "m", "model_version": "1", "seq": 0, "delta": "a",
             "tokens_out": 1, "final": False, "finish_reason": None, "tokens_in": 1,
             "error": None, "created_at": 1, "emitted_at": 2}
    assert await h.emitter.chunk(chunk) is None
    assert h.emitter.chunk_failures == 1 and h.fatal == []


async def test_results_of_one_record_finish_it_only_when_all_are_acknowledged() -> None:
    producer = FakeProducer()
    producer.on("results", "fail", KafkaTimeoutError())  # the DLQ copy succeeds, the result not
    h = Harness(producer)
    src = h.source(7)
    result = rejected_result(header(), InvalidRequest("x", "y"), worker_id="w",
                             completed_at_ms=1)
    await h.emitter.dead_letter(letter_for(src), src, result)
    await h.settled()
    assert producer.topics() == ["dlq"] and h.tracker.to_commit() == {TP: 7} and h.fatal
