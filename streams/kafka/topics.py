"""Create and describe the service's topics (auto topic creation is off on our brokers)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import Settings
from streams.errors import ConfigError, StreamserveError
from streams.kafka.broker_check import start_or_explain
from streams.kafka.options import security_options

logger = logging.getLogger(__name__)

DLQ_MAX_MESSAGE_BYTES = 5 * 1024 * 1024  # > the worker's producer max_request_size (4 MiB + 64 KiB)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


def service_topics(settings: Settings, replication_factor: int | None = None,
                   partitions: int | None = None) -> list[TopicSpec]:
    """Requests, results, tokens and the dead-letter topic, sized from the settings (or the
    arguments, which win).

    The local stack is one broker by default, so the default replication factor is 1 and
    `acks=all` waits for that one broker. With `stack up --nodes 3`, use 3: min.insync.replicas
    is then 2, so an acknowledged record survives the loss of one broker."""
    replication = replication_factor or settings.topic_replication_factor
    durable = {"min.insync.replicas": str(min(2, replication))}
    # A dead letter is a whole request plus error headers: the DLQ takes what a worker fetches.
    letters = {**durable, "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}
    return [
        TopicSpec(name, partitions or settings.topic_partitions, replication,
                  letters if name == settings.dlq_topic else durable)
        for name in (settings.requests_topic, settings.results_topic, settings.tokens_topic,
                     settings.dlq_topic)
    ]


def control_topics(settings: Settings, replication_factor: int | None = None) -> list[TopicSpec]:
    """The control plane's topics: commands keyed by model, reports keyed by worker/model.

    Compacted, so the newest record per key is kept forever and a worker that starts later
    reads the fleet's whole state; one partition, so commands apply in the order written."""
    replication = replication_factor or settings.topic_replication_factor
    compacted = {"cleanup.policy": "compact", "min.insync.replicas": str(min(2, replication))}
    return [TopicSpec(name, 1, replication, compacted)
            for name in (settings.control_topic, settings.control_status_topic)]


async def ensure_topics(bootstrap_or_settings: str | Settings, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    admin = await _started_admin(bootstrap_or_settings)
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        await _check_replication(admin, missing)
        try:
            await admin.create_topics([
                NewTopic(spec.name, spec.partitions, spec.replication_factor,
                         topic_configs=dict(spec.configs)) for spec in missing
            ])
        except TopicAlreadyExistsError:
            logger.info("topics were created concurrently by another process")
        await _wait_for_leaders(admin, [spec.name for spec in missing])
        return [spec.name for spec in missing]
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str],
                            timeout_s: float = 30.0) -> None:
    """Creation returns before every partition has a leader; clients need the leaders."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(t["error_code"] == 0 and t["partitions"]
               and all(p["leader"] >= 0 for p in t["partitions"]) for t in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise StreamserveError(f"topics {names} have no leaders after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


async def describe_topics(bootstrap_or_settings: str | Settings,
                          names: list[str]) -> list[dict[str, Any]]:
    """Partition count, leaders and in-sync replicas of each topic."""
    admin = await _started_admin(bootstrap_or_settings)
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        {"topic": t["topic"], "error_code": t["error_code"],
         "partitions": [{"partition": p["partition"], "leader": p["leader"],
                         "replicas": p["replicas"], "isr": p["isr"]}
                        for p in sorted(t["partitions"], key=lambda p: p["partition"])]}
        for t in described
    ]


async def partition_ids(bootstrap_or_settings: str | Settings, topic: str) -> list[int]:
    """The partitions of `topic` ([] when it does not exist)."""
    described = await describe_topics(bootstrap_or_settings, [topic])
    if not described or described[0]["error_code"] != 0:
        return []
    return [p["partition"] for p in described[0]["partitions"]]


async def _check_replication(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """The broker's own refusal (InvalidReplicationFactor) does not say how many brokers there
    are; this does, before anything is created."""
    brokers = len((await admin.describe_cluster())["brokers"])
    wanted = max(spec.replication_factor for spec in specs)
    if wanted > brokers:
        raise ConfigError(f"replication factor {wanted} needs {wanted} brokers, the cluster has "
                          f"{brokers} (`streamserve stack up --nodes 3` starts three)")


async def _started_admin(bootstrap_or_settings: str | Settings) -> AIOKafkaAdminClient:
    if isinstance(bootstrap_or_settings, Settings):
        options = security_options(bootstrap_or_settings)
    else:
        options = {"bootstrap_servers": bootstrap_or_settings}
    admin = AIOKafkaAdminClient(**options)
    await start_or_explain(admin, str(options["bootstrap_servers"]), admin.close)
    return admin
