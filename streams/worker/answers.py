"""The answers lanes and admission give: results, error results with their dead letters, and
token chunks — each dropped when its partition was revoked meanwhile (its new owner answers it),
each reported to the observer once Kafka has it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from streams.clock import mono_to_epoch
from streams.worker.emitter import Emitter
from streams.worker.jobs import Job
from streams.worker.observer import WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.rejection import Rejector


class Answers:
    def __init__(self, tracker: OffsetTracker[TopicPartition], emitter: Emitter,
                 rejector: Rejector, observer: WorkerObserver) -> None:
        self._tracker = tracker
        self._emitter = emitter
        self._rejector = rejector
        self._observer = observer

    async def publish(self, result: dict[str, Any], job: Job, batch_started: float | None,
                      inference_started: float | None) -> None:
        """`result` for `job` (times: monotonic ms of its batch and its inference)."""
        source = job.source
        if not self._current(job, result):
            return

        def sent(published: dict[str, Any] | None) -> None:
            self._observer.result_sent(published or result, source,
                                       mono_to_epoch(batch_started),
                                       mono_to_epoch(inference_started), job.item.task,
                                       job.item.priority)

        await self._emitter.result(result, source, job.reply_topic, on_sent=sent)

    async def dead_letter(self, result: dict[str, Any], job: Job,
                          error: BaseException | str) -> None:
        """An error result the model gave `job`, with the request's dead letter."""
        source = job.source
        if not self._current(job, result):
            return

        def sent(published: dict[str, Any] | None) -> None:
            self._observer.result_sent(published or result, source, None, None, job.item.task,
                                       job.item.priority)

        await self._rejector.failed(result, source, job.reply_topic, error, sent)

    async def publish_chunk(self, chunk: dict[str, Any], job: Job
                            ) -> asyncio.Future[Any] | None:
        if not self._tracker.is_current(job.source.tp, job.source.generation):
            return None  # no chunk of a revoked partition leaves after its hand-over
        return await self._emitter.chunk(chunk)

    def _current(self, job: Job, result: dict[str, Any]) -> bool:
        if self._tracker.is_current(job.source.tp, job.source.generation):
            return True
        self._observer.abandoned(1)  # revoked meanwhile: the new owner answers it
        self._observer.replayed(result, "handover")
        return False
