"""Admission rejects a record, never the worker: an exception nobody foresaw (a tokenizer or a
chat template choking on odd input) dead-letters that record only, with code admission_error,
and the cheap byte cap refuses an oversize record before it is decoded."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from models.base import ModelInput
from models.fake import FakeRunner, fake_spec
from streams.client import new_request
from streams.protocol.dead_letters import headers_dict
from streams.wire.codec import request_codec, result_codec, token_codec
from streams.worker.admission import Admission
from streams.worker.emitter import Emitter
from streams.worker.jobs import Job, Source
from streams.worker.observer import NullObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import Topics
from streams.worker.rejection import Rejector
from streams.worker.replies import ReplyPolicy, ReplyTopics
from streams.worker.served import ServedModel, ServedModels
from tests.unit.kafka_doubles import FakeProducer

TP = TopicPartition("req", 0)


class ChokingRunner(FakeRunner):
    def count_tokens(self, item: ModelInput) -> int:
        if "odd" in (item.text or ""):
            raise IndexError("tokenizer: index out of range in the merges table")
        return super().count_tokens(item)


class Queue:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def admit(self, job: Job) -> float | None:
        self.jobs.append(job)
        return None


async def admit_all(payloads: list[bytes]) -> tuple[FakeProducer, Queue]:
    producer, tracker, queue = FakeProducer(), OffsetTracker[TopicPartition](), Queue()
    generation = tracker.assign(TP)
    emitter = Emitter(producer, result_codec(), tracker, Topics("res", "dlq", "tok"),
                      lambda e: None, token_codec(), max_record_bytes=1 << 20,
                      rejected_for=lambda r, c, m: r)
    served = ServedModels.of([ServedModel("m", "1", ChokingRunner(fake_spec(
        "m", tasks=("embed",))))])

    async def listing() -> set[str]:
        return set()

    async def publish(result: dict[str, Any], job: Job, a: Any, b: Any) -> None:
        raise AssertionError("nothing here is answered without the lane")

    admission = Admission(request_codec(), lambda: served, {("m", "1"): queue},  # type: ignore[dict-item]
                          ReplyTopics(ReplyPolicy("res", "r.", set()), listing),
                          Rejector(emitter, NullObserver(), "w"), publish, NullObserver(), "w")
    for offset, payload in enumerate(payloads):
        tracker.started(TP, generation, offset, len(payload))
        await admission.admit(Source(TP, offset, 0.0, generation, b"k", payload), len(payload))
    await emitter.wait_acknowledged()
    await asyncio.sleep(0)
    return producer, queue


async def test_an_exception_in_the_tokenizer_rejects_that_record_only() -> None:
    codec = request_codec()
    good = codec.encode(new_request("m", "embed", text="fine words", request_id="g1"))
    odd = codec.encode(new_request("m", "embed", text="odd words", request_id="o1"))
    producer, queue = await admit_all([good, odd, good])
    assert [j.item.request_id for j in queue.jobs] == ["g1", "g1"]
    dlq = [r for r in producer.sent if r.topic == "dlq"]
    assert len(dlq) == 1 and headers_dict(dlq[0].headers)["code"] == "admission_error"
    rejected = [result_codec().decode(r.value or b"") for r in producer.sent if r.topic == "res"]
    assert [(r["request_id"], r["status"], r["error"]["code"]) for r in rejected] == [
        ("o1", "rejected", "admission_error")]
    assert "index out of range" not in rejected[0]["error"]["message"]  # stable and short


async def test_an_oversize_record_is_refused_before_it_is_decoded() -> None:
    producer, queue = await admit_all([b"\x00" * (2 * 1024 * 1024)])
    assert queue.jobs == []
    (dlq,) = [r for r in producer.sent if r.topic == "dlq"]
    assert headers_dict(dlq.headers)["code"] == "request_too_large"
