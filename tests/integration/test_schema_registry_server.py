"""Our codecs against a real Confluent-compatible registry and Confluent's own Avro serdes.

The registry is Apicurio Registry started by the project's launcher; the other side of every
exchange is `confluent-kafka`'s AvroSerializer / AvroDeserializer and its registry client.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient as ConfluentRegistry
from confluent_kafka.schema_registry import record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError as ConfluentRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas import REQUEST_SUBJECT, RESULT_SUBJECT, load_catalog
from streams.client.library import new_request
from streams.config import Settings
from streams.errors import DecodeError, StackError
from streams.kafka.stack import LocalCluster
from streams.kafka.stack.registry_server import RegistryServer
from streams.kafka.topics import ensure_topics, service_topics
from streams.wire.codec import SchemaCatalog
from streams.wire.registry_catalog import RegistryCodecs, RegistrySchemas, open_codecs
from streams.wire.schema_registry import SchemaRegistryClient
from streams.worker.engine import WorkerEngine
from streams.worker.options import EngineOptions
from tests.integration.pipeline_harness import fake_models, pipeline_settings
from tests.integration.registry_harness import schema_registry

__all__ = ["schema_registry"]  # the fixture, imported for pytest


def _request_schema() -> dict[str, Any]:
    return next(e for e in load_catalog() if e.subject == REQUEST_SUBJECT).load()


@asynccontextmanager
async def registry_worker(settings: Settings, codecs: RegistryCodecs,
                          schemas: RegistrySchemas | None = None) -> AsyncIterator[None]:
    """One real WorkerEngine (fake models) writing with the registry's ids."""
    await ensure_topics(settings, service_topics(settings))
    options = EngineOptions.from_settings(settings.model_copy(
        update={"worker_id": f"registry-{uuid.uuid4().hex[:6]}"}))
    engine = WorkerEngine(options, fake_models(), codecs.request, codecs.result,
                          chunk_codec=codecs.token, schemas=schemas)
    task = asyncio.create_task(engine.run())
    try:
        async with asyncio.timeout(60):
            while len(engine.assigned) < settings.topic_partitions:
                await asyncio.sleep(0.1)
        yield
    finally:
        engine.stop()
        await task


def _confluent_produce(settings: Settings, url: str,
                       records: Sequence[dict[str, Any]]) -> list[bytes]:
    """Serialize with Confluent's AvroSerializer (it registers under `<topic>-value`), send."""
    serializer = AvroSerializer(ConfluentRegistry({"url": url}), json.dumps(_request_schema()))
    context = SerializationContext(settings.requests_topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    payloads = []
    for record in records:
        payload = serializer(record, context)
        producer.produce(settings.requests_topic, key=record["request_id"], value=payload)
        payloads.append(payload)
    assert producer.flush(30) == 0
    return payloads


def _confluent_consume(settings: Settings, url: str,
                       expected: int) -> list[tuple[bytes, dict[str, Any]]]:
    """(raw value, AvroDeserializer's record) of the first `expected` results. A registry
    client of its own, so every writer schema is fetched from the registry by id."""
    deserializer = AvroDeserializer(ConfluentRegistry({"url": url}))
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "group.id": f"confluent-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([settings.results_topic])
    read: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + 60
    try:
        while len(read) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            value = message.value()
            context = SerializationContext(message.topic(), MessageField.VALUE)
            read.append((value, deserializer(value, context)))
    finally:
        consumer.close()
    return read


async def test_confluent_serialized_requests_are_answered_and_read_by_confluent(
        kafka: LocalCluster, schema_registry: RegistryServer) -> None:
    settings = pipeline_settings(kafka, schema_registry_url=schema_registry.url)
    # Something registered before us: a fresh registry would otherwise hand out 1-4, by
    # chance the very ids of the built-in catalogue, and hide which ids we write.
    SchemaRegistryClient(schema_registry.url).register(f"other-{uuid.uuid4().hex}-value",
                                                      {"type": "record", "name": "Other",
                                                       "fields": []})
    codecs, schemas = await open_codecs(settings)
    assert schemas is not None
    builtin = SchemaCatalog.builtin()
    assert codecs.result.schema_id != builtin.latest(RESULT_SUBJECT).schema_id
    requests = [new_request("encoder", "embed", text=f"document {i}", request_id=f"cf{i}")
                for i in range(6)]
    async with registry_worker(settings, codecs):
        payloads = await asyncio.to_thread(_confluent_produce, settings, schema_registry.url,
                                           requests)
        results = await asyncio.to_thread(_confluent_consume, settings, schema_registry.url,
                                          len(requests))
    # The serializer found the version our worker registered under the same subject.
    assert {p[1:5] for p in payloads} == {codecs.request.schema_id.to_bytes(4, "big")}
    assert sorted(r["request_id"] for _, r in results) == sorted(r["request_id"] for r in requests)
    assert all(r["status"] == "ok" and len(r["embedding"]) == 16 for _, r in results)
    latest = ConfluentRegistry({"url": schema_registry.url}).get_latest_version(
        f"{settings.results_topic}-value")
    assert codecs.result.schema_id == latest.schema_id
    assert {raw[1:5] for raw, _ in results} == {latest.schema_id.to_bytes(4, "big")}


async def test_newer_request_schema_is_learned_once_and_decoded(
        schema_registry: RegistryServer) -> None:
    topic = f"req-{uuid.uuid4().hex[:8]}"
    schemas = await RegistrySchemas.open(Settings(schema_registry_url=schema_registry.url,
                                                  requests_topic=topic))
    assert schemas is not None
    codec = schemas.codecs().request
    newer = _request_schema()
    newer["fields"] = [*newer["fields"],
                       {"name": "tenant", "type": ["null", "string"], "default": None}]
    confluent = ConfluentRegistry({"url": schema_registry.url})
    context = SerializationContext(topic, MessageField.VALUE)
    record = new_request("encoder", "embed", text="from a newer producer", request_id="n1")
    payload = AvroSerializer(confluent, json.dumps(newer))({**record, "tenant": "acme"}, context)
    with pytest.raises(DecodeError) as unknown:
        codec.decode(payload)
    assert unknown.value.reason == "unknown_schema"
    waiting = [schemas.pending(payload) for _ in range(3)]
    assert await asyncio.gather(*(w for w in waiting if w is not None)) == [True] * 3
    assert schemas.fetches == 1  # three waiting records, one registry call
    assert schemas.pending(payload) is None
    assert codec.decode(payload) == record  # read in the shipped shape: `tenant` dropped
    # BACKWARD compatibility is on: a new required field without a default is refused.
    breaking = {**newer, "fields": [*newer["fields"], {"name": "must", "type": "string"}]}
    with pytest.raises(ConfluentRegistryError, match="HTTP status code 409"):
        AvroSerializer(confluent, json.dumps(breaking))({**record, "must": "x"}, context)


async def test_a_worker_answers_requests_of_a_newer_producer_schema(
        kafka: LocalCluster, schema_registry: RegistryServer) -> None:
    """The admission path learns the newer writer id from the registry (off the event loop)
    and answers; without the registry's catalogue they would be dead-lettered."""
    settings = pipeline_settings(kafka, schema_registry_url=schema_registry.url)
    codecs, schemas = await open_codecs(settings)
    assert schemas is not None
    newer = _request_schema()
    newer["fields"] = [*newer["fields"],
                       {"name": "tenant", "type": ["null", "string"], "default": None}]
    records = [{**new_request("encoder", "embed", text=f"v2 doc {i}", request_id=f"v2-{i}"),
                "tenant": "acme"} for i in range(4)]

    def produce_newer() -> list[bytes]:
        serializer = AvroSerializer(ConfluentRegistry({"url": schema_registry.url}),
                                    json.dumps(newer))
        context = SerializationContext(settings.requests_topic, MessageField.VALUE)
        producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
        payloads = []
        for record in records:
            payloads.append(serializer(record, context))
            producer.produce(settings.requests_topic, key=record["request_id"],
                             value=payloads[-1])
        assert producer.flush(30) == 0
        return payloads

    async with registry_worker(settings, codecs, schemas):
        payloads = await asyncio.to_thread(produce_newer)
        results = await asyncio.to_thread(_confluent_consume, settings, schema_registry.url,
                                          len(records))
    assert {p[1:5] for p in payloads} != {codecs.request.schema_id.to_bytes(4, "big")}
    assert sorted(r["request_id"] for _, r in results) == [f"v2-{i}" for i in range(4)]
    assert {r["status"] for _, r in results} == {"ok"}
    assert schemas.fetches == 1  # four records of the newer schema, one registry call


async def test_made_up_id_is_refused_and_remembered(schema_registry: RegistryServer) -> None:
    schemas = await RegistrySchemas.open(Settings(schema_registry_url=schema_registry.url))
    assert schemas is not None
    codec = schemas.codecs().request
    made_up = b"\x00" + (2**31 - 7).to_bytes(4, "big") + codec.encode(
        new_request("encoder", "embed", text="x"))[5:]
    assert await schemas.learn(2**31 - 7) is False
    calls = schemas.fetches
    assert calls == 1  # a 404 is final: no retries
    waiting = schemas.pending(made_up)
    assert waiting is not None and await waiting is False
    assert schemas.fetches == calls  # remembered, not asked again
    with pytest.raises(DecodeError, match="unknown schema id"):
        codec.decode(made_up)


async def test_record_name_strategy_matches_confluent_record_subject_strategy(
        schema_registry: RegistryServer) -> None:
    schemas = await RegistrySchemas.open(Settings(
        schema_registry_url=schema_registry.url,
        schema_registry_subject_strategy="RecordNameStrategy"))
    assert schemas is not None
    confluent = ConfluentRegistry({"url": schema_registry.url})
    serializer = AvroSerializer(confluent, json.dumps(_request_schema()),
                                conf={"subject.name.strategy": record_subject_name_strategy})
    record = new_request("encoder", "embed", text="by record name", request_id="rn1")
    payload = serializer(record, SerializationContext("any-topic", MessageField.VALUE))
    codec = schemas.codecs().request
    assert payload[1:5] == codec.schema_id.to_bytes(4, "big")
    assert REQUEST_SUBJECT in confluent.get_subjects()
    assert codec.decode(payload) == record


def test_launcher_keeps_ids_across_restarts_and_stops_by_pid(tmp_path: Path) -> None:
    server = RegistryServer.create(tmp_path / "registry")  # file storage, as the stack runs it
    server.start(timeout_s=120)
    try:
        client = SchemaRegistryClient(server.url)
        first = client.register("restart-value", _request_schema())
        pid = server.stop()
        assert pid is not None and not server.running
        assert RegistryServer.load(server.directory) == server  # recorded: no PID
        server.start(timeout_s=120)
        assert client.register("restart-value", _request_schema()) == first
        assert json.loads(client.get_schema(first))["name"] == "InferenceRequest"
    finally:
        server.stop(purge=True)
    assert not server.directory.exists()


def test_launcher_reports_a_registry_that_exits(tmp_path: Path) -> None:
    server = RegistryServer.create(tmp_path / "registry", in_memory=True)
    with pytest.raises(StackError, match="exited during start-up"):
        server.start(timeout_s=30, java=Path("/bin/false"))
    assert server.pid is None
