"""In-process workers (real WorkerEngine, real Kafka, fake models) for pipeline tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer

from models.fake import FakeRunner, fake_spec
from streams.client.library import InferenceClient
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from streams.protocol.dead_letters import headers_dict
from streams.wire.codec import request_codec, result_codec
from streams.worker.engine import WorkerEngine
from streams.worker.options import EngineOptions
from streams.worker.served import ServedModel, ServedModels

if TYPE_CHECKING:
    from streams.tracing.spans import Tracer


def pipeline_settings(kafka: LocalCluster, **overrides: Any) -> Settings:
    """Settings on fresh, uniquely named topics and group, so tests never see each other."""
    suffix = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "requests_topic": f"req-{suffix}", "results_topic": f"res-{suffix}",
        "dlq_topic": f"dlq-{suffix}", "tokens_topic": f"tok-{suffix}",
        "consumer_group": f"workers-{suffix}", "topic_partitions": 4,
        "max_wait_ms": 20.0, "max_batch_size": 16,
    }
    values.update(overrides)
    return Settings(**values)


def fake_models(delay_s: float = 0.0, max_input_tokens: int = 40) -> ServedModels:
    generator = FakeRunner(fake_spec("echo", tasks=("generate",), fake_delay_s=delay_s,
                                     max_input_tokens=max_input_tokens, max_new_tokens=32))
    encoder = FakeRunner(fake_spec("encoder", tasks=("embed", "classify"),
                                   fake_delay_s=delay_s, max_input_tokens=max_input_tokens,
                                   labels=("yes", "no")))
    return ServedModels.of([ServedModel("echo", "1", generator),
                            ServedModel("encoder", "1", encoder, labels=("yes", "no"))])


@dataclass
class Workers:
    settings: Settings
    engines: list[WorkerEngine] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def computed(self) -> int:
        return sum(lane.computed for e in self.engines for lane in e.lanes.values())


@asynccontextmanager
async def running_workers(settings: Settings, count: int,
                          models: Sequence[ServedModels],
                          tracer: Tracer | None = None) -> AsyncIterator[Workers]:
    await ensure_topics(settings, service_topics(settings))
    workers = Workers(settings)
    for index in range(count):
        options = EngineOptions.from_settings(settings.model_copy(
            update={"worker_id": f"w{index}-{uuid.uuid4().hex[:6]}"}))
        engine = WorkerEngine(options, models[index], request_codec(), result_codec(),
                              tracer=tracer)
        workers.engines.append(engine)
        workers.tasks.append(asyncio.create_task(engine.run()))
    try:
        # Settled: every partition owned, and every worker owns some (the first worker to join
        # briefly owns them all until the others' join triggers a rebalance).
        async with asyncio.timeout(60):
            while (sum(len(e.assigned) for e in workers.engines) < settings.topic_partitions
                   or not all(e.assigned for e in workers.engines)):
                await asyncio.sleep(0.1)
        yield workers
    finally:
        for engine in workers.engines:
            engine.stop()
        await asyncio.gather(*workers.tasks)


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[InferenceClient]:
    async with InferenceClient(settings) as client:
        yield client


async def read_dlq(settings: Settings, expected: int,
                   timeout_s: float = 30.0) -> list[tuple[bytes | None, dict[str, str]]]:
    """(original value, error headers) of the first `expected` dead letters."""
    consumer = AIOKafkaConsumer(settings.dlq_topic, group_id=None, auto_offset_reset="earliest",
                                bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    letters: list[tuple[bytes | None, dict[str, str]]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(letters) < expected:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    letters.extend((r.value, headers_dict(list(r.headers))) for r in records)
    finally:
        await consumer.stop()
    return letters
