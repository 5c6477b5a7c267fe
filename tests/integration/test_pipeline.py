"""The pipeline end to end on a real broker: requests in, batched fake inference, results out."""

from __future__ import annotations

import struct
import time
from collections import Counter

from aiokafka import AIOKafkaProducer

from streams.client.library import new_request
from streams.kafka.stack import LocalCluster
from streams.wire.codec import result_codec
from tests.integration.pipeline_harness import (
    client_for,
    fake_models,
    pipeline_settings,
    read_dlq,
    running_workers,
)


async def test_500_requests_two_workers_all_answered_once(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    async with running_workers(settings, 2, [fake_models(), fake_models()]) as workers, \
            client_for(settings) as client:
        assert all(engine.assigned for engine in workers.engines)  # both got partitions
        requests = [new_request("encoder", "embed", text=f"document number {i}",
                                request_id=f"r{i}") for i in range(250)]
        requests += [new_request("echo", "generate", text=f"say {i} please",
                                 request_id=f"g{i}") for i in range(250)]
        results = await client.infer_many(requests, timeout_s=90)
    assert Counter(r["status"] for r in results) == {"ok": 500}
    assert {r["request_id"] for r in results} == {r["request_id"] for r in requests}
    by_id = {r["request_id"]: r for r in results}
    assert len(by_id["r7"]["embedding"]) == 16
    assert by_id["g3"]["text"] == "say 3 please"
    assert {r["worker_id"] for r in results} == {e.options.worker_id for e in workers.engines}
    assert max(r["batch_size"] for r in results) > 1  # micro-batches really formed
    assert all(r["timings"]["total_ms"] >= r["timings"]["inference_ms"] >= 0 for r in results)


async def test_bad_input_goes_to_dlq_and_good_input_is_served(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    good = [new_request("encoder", "embed", text=f"fine {i}", request_id=f"ok{i}")
            for i in range(6)]
    readable_bad = {
        "unknown_model": new_request("nope", "embed", text="x", request_id="bad-model"),
        "unknown_task": new_request("encoder", "generate", text="x", request_id="bad-task"),
        "empty_input": new_request("encoder", "embed", text="   ", request_id="bad-empty"),
        "input_too_long": new_request("encoder", "embed", text="w " * 100,
                                      request_id="bad-long"),
        "invalid_parameters": new_request("echo", "generate", text="hi",
                                          parameters={"temperature": 9.0},
                                          request_id="bad-params"),
    }
    unreadable = [b"", b"\x07not avro at all", b"\x00" + struct.pack(">I", 999) + b"\x02x",
                  b"\x00\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff"]
    a_result = result_codec().encode({**_some_result(), "request_id": "wrong-subject"})
    async with running_workers(settings, 1, [fake_models()]) as workers, \
            client_for(settings) as client:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                    acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for payload in [*unreadable, a_result]:
                await producer.send_and_wait(settings.requests_topic, payload, key=b"junk")
        finally:
            await producer.stop()
        results = await client.infer_many([good[0], *readable_bad.values(), *good[1:]],
                                           timeout_s=60)
        assert workers.engines[0].consumed >= len(results) + len(unreadable) + 1
    by_id = {r["request_id"]: r for r in results}
    assert all(by_id[g["request_id"]]["status"] == "ok" for g in good)
    for code, request in readable_bad.items():
        result = by_id[request["request_id"]]
        assert result["status"] == "rejected", result
        assert result["error"]["code"] == code

    letters = await read_dlq(settings, expected=len(unreadable) + 1 + len(readable_bad))
    codes = Counter(headers["code"] for _, headers in letters)
    assert codes == Counter({"empty": 1, "bad_magic": 1, "unknown_schema": 1, "corrupt": 1,
                             "wrong_subject": 1, **dict.fromkeys(readable_bad, 1)})
    for _value, headers in letters:
        assert headers["topic"] == settings.requests_topic
        assert int(headers["partition"]) in range(settings.topic_partitions)
        assert int(headers["offset"]) >= 0
        assert headers["exception.class.name"] in {"DecodeError", "InvalidRequest"}
        assert headers["exception.message"]
    assert {value for value, _ in letters} >= {*unreadable, a_result}


async def test_expired_requests_are_answered_without_compute(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    past = int(time.time() * 1000) - 1_000
    async with running_workers(settings, 1, [fake_models()]) as workers, \
            client_for(settings) as client:
        # Created 2 s ago with a 1 s deadline: valid, and already past when it arrives.
        expired = [{**new_request("encoder", "embed", text=f"late {i}", request_id=f"late{i}",
                                  deadline_ms=past), "created_at": past - 1_000}
                   for i in range(20)]
        fresh = [new_request("encoder", "embed", text=f"on time {i}", request_id=f"fresh{i}",
                             deadline_ms=int(time.time() * 1000) + 60_000) for i in range(5)]
        results = await client.infer_many(expired + fresh, timeout_s=60)
        computed = workers.computed()
    statuses = {r["request_id"]: r["status"] for r in results}
    assert all(statuses[f"late{i}"] == "expired" for i in range(20))
    assert all(statuses[f"fresh{i}"] == "ok" for i in range(5))
    assert computed == 5  # the expired ones never reached the model


async def test_model_exception_fails_only_its_batch(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, max_wait_ms=200.0, max_batch_size=4)
    async with running_workers(settings, 1, [fake_models()]) as _, \
            client_for(settings) as client:
        first = await client.infer_many(
            [new_request("echo", "generate", text="boom __raise__", request_id="boom")])
        after = await client.infer_many(
            [new_request("echo", "generate", text=f"fine {i}", request_id=f"after{i}")
             for i in range(8)])
        letters = await read_dlq(settings, 1)
    assert first[0]["status"] == "error"
    assert first[0]["error"]["code"] == "model_error"
    # A stable, short message for the client; the model's own error goes to the dead letter.
    assert first[0]["error"]["message"] == "model echo failed on this request (RuntimeError)"
    value, headers = letters[0]
    assert headers["code"] == "model_error" and "__raise__" in headers["exception.message"]
    assert headers["exception.class.name"] == "RuntimeError" and b"boom" in (value or b"")
    assert [r["status"] for r in after] == ["ok"] * 8


def _some_result() -> dict[str, object]:
    now = int(time.time() * 1000)
    return {"request_id": "x", "model": "m", "model_version": None, "status": "ok",
            "text": None, "embedding": None, "label": None, "score": None,
            "finish_reason": None, "tokens_in": 0, "tokens_out": 0,
            "timings": {"kafka_wait_ms": 0.0, "queue_wait_ms": 0.0, "batch_wait_ms": 0.0,
                        "inference_ms": 0.0, "total_ms": 0.0},
            "batch_size": 0, "worker_id": "", "error": None, "created_at": now,
            "completed_at": now, "attributes": {}}


async def test_a_batch_longer_than_the_session_timeout_keeps_the_group_stable(
        kafka: LocalCluster) -> None:
    """Inference runs off the event loop, so heartbeats go on during a 13 s batch (the session
    timeout is 10 s): no rebalance, no redelivery, no duplicate."""
    settings = pipeline_settings(kafka, topic_partitions=2, max_batch_size=4, max_wait_ms=100.0)
    async with running_workers(settings, 1, [fake_models(delay_s=13.0)]) as workers, \
            client_for(settings) as client:
        engine = workers.engines[0]
        assigned_before = set(engine.assigned)
        results = await client.infer_many(
            [new_request("encoder", "embed", text=f"slow {i}") for i in range(4)],
            timeout_s=90)
        assert engine.revocations == 0
        assert engine.assigned == assigned_before
        assert client.duplicates == 0
    assert [r["status"] for r in results] == ["ok"] * 4
    assert max(r["timings"]["inference_ms"] for r in results) >= 13_000
