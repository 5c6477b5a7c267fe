"""Trace context through a real broker and an in-process worker (fake models), spans caught by
the SDK's in-memory exporter: client `send` → worker request span → stage spans, batch spans
linked to their requests, and the answers' records in the same trace."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan

from models.fake import fake_spec
from models.fake_streaming import FakeStreamingGenerator
from streams.client.library import InferenceClient, new_request
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.tracing.propagation import TraceParent, extract
from streams.tracing.setup import memory_tracing
from streams.wire.codec import request_codec, result_codec
from streams.worker.served import ServedModel, ServedModels
from tests.integration.pipeline_harness import fake_models, pipeline_settings, running_workers

STAGES = {"kafka_wait", "batch_wait", "queue_wait", "inference", "publish"}
Raw = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]




async def read_raw(settings: Settings, topic: str, expected: int,
                   timeout_s: float = 30.0) -> list[Raw]:
    """(key, value, headers) of the first `expected` records of `topic`."""
    consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest",
                                bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    found: list[Raw] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    found.extend((r.key, r.value, list(r.headers)) for r in records)
    finally:
        await consumer.stop()
    return found


def carried(headers: Sequence[tuple[str, bytes]]) -> TraceParent:
    context = extract(headers)
    assert context is not None, headers
    return context


def attr(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


def request_spans(spans: Sequence[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {str(attr(s, "streamserve.request_id")): s for s in spans
            if s.name == "streamserve.request"}


async def test_spans_follow_each_request_from_the_client_through_its_batch(
        kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, max_wait_ms=200.0)  # long enough to batch them all
    tracer, exporter = memory_tracing()
    ids = [f"t{i}" for i in range(6)]
    async with running_workers(settings, 1, [fake_models()], tracer=tracer), \
            InferenceClient(settings, tracer=tracer) as client:
        results = await client.infer_many(
            [new_request("echo", "generate", text=f"hello {i}", request_id=rid)
             for i, rid in enumerate(ids)])
    assert {r["status"] for r in results} == {"ok"}
    spans = exporter.get_finished_spans()
    sends = {str(attr(s, "streamserve.request_id")): s for s in spans
             if s.name == "streamserve.send"}
    requests = request_spans(spans)
    assert set(sends) == set(requests) == set(ids)
    by_parent: dict[int, set[str]] = {}
    for span in spans:
        if span.parent is not None:
            by_parent.setdefault(span.parent.span_id, set()).add(span.name)
    for rid in ids:
        request, send = requests[rid], sends[rid]
        assert request.parent is not None and send.context is not None
        assert request.parent.span_id == send.context.span_id  # the client's span
        assert request.context is not None
        assert request.context.trace_id == send.context.trace_id
        assert by_parent[request.context.span_id] == STAGES
    batches = [s for s in spans if s.name == "streamserve.batch"]
    linked = [link.context.span_id for b in batches for link in b.links]
    assert sorted(linked) == sorted(r.context.span_id for r in requests.values() if r.context)
    assert all(attr(b, "streamserve.batch_size") == len(b.links) for b in batches)
    assert len(batches) < len(ids)  # batched, not one call per request
    for key, _, headers in await read_raw(settings, settings.results_topic, len(ids)):
        context, request = carried(headers), requests[(key or b"").decode()]
        assert request.context is not None
        assert (context.trace_id, context.span_id) == (request.context.trace_id,
                                                       request.context.span_id)


async def test_token_chunks_carry_the_request_trace(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    tracer, exporter = memory_tracing()
    spec = dataclasses.replace(fake_spec("chat", tasks=("generate",), max_batch_size=4,
                                         max_new_tokens=16), engine="continuous")
    served = ServedModels.of([ServedModel("chat", "1", FakeStreamingGenerator(spec, 0.005))])
    async with running_workers(settings, 1, [served], tracer=tracer), \
            InferenceClient(settings, tracer=tracer) as client:
        chunks = [c async for c in client.stream(new_request(
            "chat", "generate", text="one two three four", request_id="s1"))]
    request = request_spans(exporter.get_finished_spans())["s1"]
    assert request.context is not None and request.parent is not None
    records = await read_raw(settings, settings.tokens_topic, len(chunks))
    assert len(records) == len(chunks) >= 4
    assert {(carried(h).trace_id, carried(h).span_id) for _, _, h in records} == {
        (request.context.trace_id, request.context.span_id)}
    (_, _, result_headers), = await read_raw(settings, settings.results_topic, 1)
    assert carried(result_headers).span_id == request.context.span_id


async def test_hostile_trace_headers_never_stop_a_record(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    tracer, exporter = memory_tracing()
    valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    junk = {"j-binary": [("traceparent", os.urandom(55)), ("tracestate", os.urandom(900))],
            "j-huge": [("traceparent", b"0" * 500_000)],
            "j-twice": [("traceparent", valid), ("traceparent", valid)]}
    codec = request_codec()
    refused = [("traceparent", valid), ("x-app", b"1")]  # its dead letter keeps them
    records = [(rid, headers, {}) for rid, headers in junk.items()]
    records.append(("bad", refused, {"temperature": 9.0}))
    async with running_workers(settings, 1, [fake_models()], tracer=tracer):
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                    max_request_size=2 << 20)
        await producer.start()
        try:
            for rid, headers, parameters in records:
                await producer.send_and_wait(
                    settings.requests_topic, key=rid.encode(), headers=headers,
                    value=codec.encode(new_request("echo", "generate", text="hi",
                                                   request_id=rid, parameters=parameters)))
            answers = await read_raw(settings, settings.results_topic, len(records))
        finally:
            await producer.stop()
    decode = result_codec().decode
    statuses = {(key or b"").decode(): decode(value or b"")["status"]
                for key, value, _ in answers}
    assert statuses == {"j-binary": "ok", "j-huge": "ok", "j-twice": "ok", "bad": "rejected"}
    rejected_headers = next(h for key, _, h in answers if key == b"bad")
    assert ("traceparent", valid) in rejected_headers  # the client's trace, not a new one
    requests = request_spans(exporter.get_finished_spans())
    assert all(requests[rid].parent is None for rid in junk)  # each a fresh trace
    (_, _, letter_headers), = await read_raw(settings, settings.dlq_topic, 1)
    assert all(header in letter_headers for header in refused)
