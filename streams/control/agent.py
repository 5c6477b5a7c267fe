"""The control agent: a faust agent in every worker applying the control topic's records.

Broadcast: the worker's faust app id is `streamserve-<worker id>`, and faust's consumer group
is its app id, so each worker is the only member of its own group and is assigned every
partition of the control topic. The topic is read with acks off: faust never commits an
offset for it, so the per-worker group has no position and a (re)started worker always reads
the compacted topic from its beginning, rebuilding the fleet's state in memory. Ready waits
for the end offsets captured before the app started (`ends`).

Each record is decoded, checked against this worker's registry and applied through the same
hot-reload path as the registry file (load new, switch routing in one step, drain and unload
the old). A record that does not decode, names an unknown model or version, or carries
weights that do not sum to more than 0 is dead-lettered (Kafka-Connect headers, like refused
requests) and changes nothing. Either way the worker reports on the status topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.clock import epoch_ms
from streams.config import Settings
from streams.control.state import ControlCommand, ControlRejected, ModelState, check
from streams.errors import DecodeError, StreamserveError
from streams.kafka.options import security_options
from streams.kafka.topics import partition_ids
from streams.protocol.dead_letters import dead_letter
from streams.wire.codec import control_codec, status_codec

logger = logging.getLogger(__name__)


class ControlApplier(Protocol):
    """The worker's side (streams/worker/reload.py)."""

    async def known(self) -> dict[str, list[str]]: ...

    async def apply(self, model: str, state: ModelState) -> None: ...

    def serving(self, model: str) -> tuple[dict[str, float], bool]: ...


class ControlAgent:
    def __init__(self, app: faust.App, settings: Settings, worker_id: str,
                 applier: ControlApplier, ends: Mapping[int, int],
                 on_caught_up: Callable[[], None], models: Callable[[], list[str]]) -> None:
        self._worker_id = worker_id
        self._applier = applier
        self._codec, self._status_codec = control_codec(), status_codec()
        self._pending = {p: end for p, end in ends.items() if end > 0}
        self._on_caught_up = on_caught_up
        self._models = models
        self._dlq_topic = settings.dlq_topic
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self._topic = app.topic(settings.control_topic, acks=False, **raw)
        self._status = app.topic(settings.control_status_topic, **raw)
        self._dlq = app.topic(settings.dlq_topic, **raw)
        self.applied = self.refused = 0
        app.agent(self._topic, name=f"control-{worker_id}")(self._consume)
        app.task(self._report_when_caught_up)
        self._caught_up = asyncio.Event()
        if not self._pending:
            self._caught_up_now()

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def wait_caught_up(self) -> None:
        await self._caught_up.wait()

    async def _consume(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            await self.handle(message.key, message.value, message.partition, message.offset)
            if self._pending.get(message.partition, 0) <= message.offset + 1:
                self._pending.pop(message.partition, None)
                if not self._pending and not self.caught_up:
                    self._caught_up_now()

    def _caught_up_now(self) -> None:
        self._caught_up.set()
        self._on_caught_up()

    async def handle(self, key: bytes | None, value: bytes | None, partition: int,
                     offset: int) -> None:
        """Apply one control record, or dead-letter it; never raises (a record must not stop
        the agent, and faust would otherwise restart it and skip nothing)."""
        model = (key or b"").decode(errors="replace")
        try:
            command = ControlCommand.of(self._codec.decode(value or b""))
            model = command.model
            check(command, key, await self._applier.known())
            await self._applier.apply(command.model, command.state)
        except (DecodeError, ControlRejected, KeyError, TypeError, ValueError) as exc:
            code = exc.code if isinstance(exc, ControlRejected) else "undecodable"
            await self._refuse(key, value, partition, offset, model, code, exc)
            return
        except StreamserveError as exc:  # a model failed to load: the old state serves on
            await self._refuse(key, value, partition, offset, model, "apply_failed", exc)
            return
        except Exception as exc:
            logger.exception("control record at offset %d not applied", offset)
            await self._refuse(key, value, partition, offset, model, "internal", exc)
            return
        self.applied += 1
        logger.info("control %s %s applied: %s", command.action, command.model,
                    self._applier.serving(command.model))
        await self.report(command.model, command.command_id, True, None)

    async def _refuse(self, key: bytes | None, value: bytes | None, partition: int,
                      offset: int, model: str, code: str, error: BaseException) -> None:
        self.refused += 1
        logger.warning("control record at offset %d dead-lettered (%s): %s", offset, code, error)
        letter = dead_letter(key=key, value=value, topic=self._topic.get_topic_name(),
                             partition=partition, offset=offset,
                             error_class=type(error).__name__, message=str(error)[:1000],
                             code=code)
        headers = [*letter.headers, ("streamserve.worker_id", self._worker_id.encode())]
        try:
            await (await self._dlq.send(key=letter.key, value=letter.value, headers=headers))
            await self.report(model, f"offset:{offset}", False, f"{code}: {error}"[:1000])
        except Exception as exc:  # noqa: BLE001 - reporting is best effort; the state is safe
            logger.error("control refusal at offset %d not published: %r", offset, exc)

    async def report(self, model: str, command_id: str, applied: bool,
                     error: str | None) -> None:
        """This worker's state for `model` on the status topic (key '<worker>/<model>')."""
        split, paused = self._applier.serving(model)
        record = {"worker_id": self._worker_id, "model": model, "command_id": command_id,
                  "applied": applied, "error": error, "paused": paused,
                  "versions": [{"version": v, "share": s} for v, s in sorted(split.items())],
                  "reported_at": int(epoch_ms())}
        await self._status.send(key=f"{self._worker_id}/{model}".encode(),
                                value=self._status_codec.encode(record))

    async def withdraw(self) -> None:
        """At a graceful stop: tombstones for this worker's reports, so `models list` and the
        CLI's wait for answers forget it (a crashed worker's reports stay until it returns)."""
        try:
            for model in self._models():
                await self._status.send(key=f"{self._worker_id}/{model}".encode(), value=None)
            await self._status.app.producer.flush()
        except Exception as exc:  # noqa: BLE001 - a stopping worker must still stop
            logger.warning("control reports not withdrawn: %r", exc)

    async def _report_when_caught_up(self) -> None:
        """Once caught up, what this worker serves: `streamserve models list` reads it."""
        await self._caught_up.wait()
        for model in self._models():
            await self.report(model, "startup", True, None)


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The control topic's end offset per partition, before the agent starts: caught up means
    having read up to these (a later record is applied too, but is not waited for)."""
    tps = [TopicPartition(topic, p) for p in await partition_ids(settings, topic)]
    consumer = AIOKafkaConsumer(**security_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
