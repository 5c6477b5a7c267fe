"""Token streaming through Kafka with a continuous-batching (fake) engine on a real broker."""

from __future__ import annotations

import asyncio
import dataclasses

from models.fake import fake_spec
from models.fake_streaming import FakeStreamingGenerator
from streams.client.library import new_request
from streams.kafka.stack import LocalCluster
from streams.worker.served import ServedModel, ServedModels
from tests.integration.pipeline_harness import (
    client_for,
    fake_models,
    pipeline_settings,
    running_workers,
)


def _streaming_model(token_delay_s: float = 0.01, slots: int = 4) -> ServedModels:
    spec = dataclasses.replace(fake_spec("chat", tasks=("generate",), max_batch_size=slots,
                                         max_new_tokens=64), engine="continuous")
    generator = FakeStreamingGenerator(spec, token_delay_s=token_delay_s)
    return ServedModels.of([ServedModel("chat", "1", generator)])


async def test_streamed_chunks_arrive_in_order_and_join_to_the_result(
        kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    prompt = "one two three four five six seven eight nine ten"
    async with running_workers(settings, 1, [_streaming_model()]), \
            client_for(settings) as client:
        request = new_request("chat", "generate", text=prompt, request_id="s1",
                              parameters={"max_new_tokens": 32})
        chunks = [chunk async for chunk in client.stream(request)]
        result = await client.result("s1")
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert len(chunks) >= 10  # one chunk per token (+ the final one)
    assert [c["final"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert chunks[-1]["finish_reason"] == "stop"
    assert "".join(c["delta"] for c in chunks) == result["text"]
    assert result["text"].split() == prompt.split()
    assert result["status"] == "ok" and result["tokens_out"] == 10
    assert result["time_to_first_token_ms"] is not None
    assert 0 <= result["time_to_first_token_ms"] <= result["timings"]["total_ms"]


async def test_continuous_batching_lets_a_short_request_finish_first(
        kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    long_prompt = " ".join(f"w{i}" for i in range(60))
    async with running_workers(settings, 1, [_streaming_model(token_delay_s=0.03)]), \
            client_for(settings) as client:
        long_run = await client.send(new_request("chat", "generate", text=long_prompt,
                                                 request_id="long",
                                                 parameters={"max_new_tokens": 60}))
        await asyncio.sleep(0.3)  # the long one is decoding
        short = await client.infer(new_request("chat", "generate", text="hi there",
                                               request_id="short"))
        assert not long_run.done()  # joined the running batch, did not wait for it
        long_result = await long_run
    assert short["status"] == long_result["status"] == "ok"
    assert short["completed_at"] < long_result["completed_at"]
    assert long_result["tokens_out"] == 60


async def test_non_streamed_generate_gets_no_chunks_but_a_result(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    async with running_workers(settings, 1, [_streaming_model()]), \
            client_for(settings) as client:
        results = await client.infer_many(
            [new_request("chat", "generate", text=f"alpha beta {i}", request_id=f"q{i}")
             for i in range(12)])
    assert {r["status"] for r in results} == {"ok"}
    assert {r["text"] for r in results} == {f"alpha beta {i}" for i in range(12)}
    assert all(r["time_to_first_token_ms"] is not None for r in results)


async def test_stream_from_a_static_lane_and_a_rejected_stream_both_end(
        kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka)
    async with running_workers(settings, 1, [fake_models()]), client_for(settings) as client:
        static = [c async for c in client.stream(new_request(
            "echo", "generate", text="static batch text", request_id="st"), timeout_s=30)]
        rejected = [c async for c in client.stream(new_request(
            "echo", "generate", text="hi", parameters={"temperature": 9.0},
            request_id="bad"), timeout_s=30)]
    assert [(c["seq"], c["final"], c["delta"]) for c in static] == [
        (0, True, "static batch text")]
    assert len(rejected) == 1 and rejected[0]["final"]
    assert rejected[0]["finish_reason"] == "rejected"
    assert "temperature" in rejected[0]["error"]
