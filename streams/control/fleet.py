"""The operator's reads and writes on the control plane (aiokafka): the newest record per key
of a compacted topic, a command published, and the workers' answers to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.config import Settings
from streams.control.state import ControlCommand, check
from streams.kafka.options import producer_options, security_options
from streams.kafka.topics import partition_ids
from streams.wire.codec import control_codec, status_codec


@dataclass(frozen=True)
class Snapshot:
    """The control topic's newest command per model and the status topic's newest report per
    worker/model, read up to the end offsets seen when the read began."""

    commands: dict[str, ControlCommand]
    reports: dict[str, dict[str, Any]]  # '<worker>/<model>' -> ControlStatus record
    status_ends: dict[TopicPartition, int]

    def reporting(self, model: str) -> set[str]:
        """The workers whose newest report names `model`: who should answer a command."""
        return {r["worker_id"] for r in self.reports.values() if r["model"] == model}


async def _read_to_end(settings: Settings, consumer: AIOKafkaConsumer, topic: str
                       ) -> tuple[list[tuple[bytes, bytes | None]], dict[TopicPartition, int]]:
    """Every keyed record of `topic` up to its end offsets now, in log order."""
    tps = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    if not tps:
        return [], {}
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    ends = await consumer.end_offsets(tps)
    keyed: list[tuple[bytes, bytes | None]] = []
    async def behind() -> bool:
        return any([await consumer.position(tp) < ends[tp] for tp in tps])

    while await behind():
        for records in (await consumer.getmany(*tps, timeout_ms=500)).values():
            for record in records:
                if record.key is not None:
                    keyed.append((record.key, record.value))
    return keyed, ends


async def snapshot(settings: Settings, known: Mapping[str, Sequence[str]]) -> Snapshot:
    """The fleet's state; a command counts only if it passes the workers' check against
    `known` (the registry), since the workers dead-letter the others and keep the previous."""
    consumer = AIOKafkaConsumer(**security_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        commands_raw, _ = await _read_to_end(settings, consumer, settings.control_topic)
        reports_raw, status_ends = await _read_to_end(settings, consumer,
                                                   settings.control_status_topic)
    finally:
        await consumer.stop()
    control, status = control_codec(), status_codec()
    commands = {}
    for key, value in commands_raw:
        try:  # a record the workers dead-lettered is not the model's state
            command = ControlCommand.of(control.decode(value or b""))
            check(command, key, known)
        except Exception:  # noqa: BLE001 - any record a worker refuses is skipped the same way
            continue
        commands[command.model] = command
    reports: dict[str, dict[str, Any]] = {}
    for key, value in reports_raw:  # the newest per key; a tombstone (None) removes it
        if value is None:
            reports.pop(key.decode(), None)
        else:
            reports[key.decode()] = status.decode(value)
    return Snapshot(commands, reports, status_ends)


async def publish(settings: Settings, command: ControlCommand) -> int:
    """Write `command` keyed by its model, acknowledged by every in-sync replica; its offset."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.control_topic,
                                            control_codec().encode(command.record()),
                                            key=command.model.encode())
        return int(sent.offset)
    finally:
        await producer.stop()


async def answers(settings: Settings, command_id: str, expected: set[str], count: int | None,
                  since: dict[TopicPartition, int], timeout_s: float) -> dict[str, dict[str, Any]]:
    """The reports naming `command_id` written after `since`, per worker, until every worker
    in `expected` (or `count` workers, when given) answered, or `timeout_s` passed."""
    consumer = AIOKafkaConsumer(**security_options(settings), enable_auto_commit=False)
    await consumer.start()
    got: dict[str, dict[str, Any]] = {}
    codec = status_codec()
    try:
        tps = list(since) or [TopicPartition(settings.control_status_topic, 0)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, since.get(tp, 0))
        deadline = time.monotonic() + timeout_s
        def done() -> bool:
            if count is not None:
                return len(got) >= count
            return bool(expected) and expected <= set(got)

        while time.monotonic() < deadline and not done():
            for records in (await consumer.getmany(*tps, timeout_ms=200)).values():
                for record in records:
                    report = codec.decode(record.value) if record.value is not None else None
                    if report is not None and report["command_id"] == command_id:
                        got[report["worker_id"]] = report
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return got
