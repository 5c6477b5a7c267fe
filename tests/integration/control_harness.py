"""Control-plane helpers: fleet settings, worker processes that read the control topics, the
`streamserve models` CLI as a real subprocess, and readers of results and dead letters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import control_topics, ensure_topics, service_topics
from streams.protocol.dead_letters import headers_dict
from streams.wire.codec import result_codec
from tests.integration.fault_harness import ROOT, WorkerProcess

CANARY_REGISTRY = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed"]
kind = "fake"
max_batch_size = 32
weight = 9
default = true

[[models]]
name = "encoder"
version = "2"
tasks = ["embed"]
kind = "fake"
max_batch_size = 32
weight = 1
"""


async def fleet_settings(kafka: LocalCluster) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap_servers=kafka.bootstrap_servers,
                        requests_topic=f"req-{suffix}", results_topic=f"res-{suffix}",
                        dlq_topic=f"dlq-{suffix}", tokens_topic=f"tok-{suffix}",
                        control_topic=f"ctl-{suffix}", control_status_topic=f"ctls-{suffix}",
                        consumer_group=f"g-{suffix}", topic_partitions=4, max_wait_ms=20)
    await ensure_topics(settings, service_topics(settings) + control_topics(settings))
    return settings


def env_of(settings: Settings, registry: Path) -> dict[str, str]:
    return {"STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "STREAMSERVE_CONTROL_TOPIC": settings.control_topic,
            "STREAMSERVE_CONTROL_STATUS_TOPIC": settings.control_status_topic,
            "STREAMSERVE_DLQ_TOPIC": settings.dlq_topic,
            "STREAMSERVE_MODEL_REGISTRY": str(registry), "STREAMSERVE_REQUEST_LOG": "false",
            "STREAMSERVE_TORCH_THREADS": "1"}


def worker(name: str, settings: Settings, registry: Path, tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(name, settings, registry, tmp_path / f"{name}.log",
                         extra_env=env_of(settings, registry))


async def models_cli(settings: Settings, registry: Path, *argv: str) -> tuple[int, str]:
    """`streamserve models ...` in its own process: (exit status, stdout + stderr)."""
    env = {**os.environ, **env_of(settings, registry)}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "streams.cli", "models", *argv], env=env,
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


@dataclass
class Answered:
    versions: dict[str, str]  # request id -> model version of its ok result
    statuses: dict[str, str]
    control_letters: list[dict[str, str]]  # error headers of dead-lettered control records


async def read_answers(settings: Settings, expected: set[str], timeout_s: float,
                       letters: int = 0) -> Answered:
    """Results and dead letters from the start, until `expected` ids are answered and at
    least `letters` control records were dead-lettered (or the timeout)."""
    consumer = AIOKafkaConsumer(settings.results_topic, settings.dlq_topic, group_id=None,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    codec, answered = result_codec(), Answered({}, {}, [])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not (
                expected <= set(answered.statuses) and len(answered.control_letters) >= letters):
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                for record in records:
                    if tp.topic == settings.dlq_topic:
                        headers = headers_dict(record.headers)
                        if headers.get("topic") == settings.control_topic:
                            answered.control_letters.append(headers)
                        continue
                    result = codec.decode(record.value or b"")
                    answered.statuses[result["request_id"]] = result["status"]
                    answered.versions[result["request_id"]] = result["model_version"]
    finally:
        await consumer.stop()
    return answered
