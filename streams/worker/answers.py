"""The answers lanes and admission give: results, error results with their dead letters, and
token chunks — each dropped when its partition was revoked meanwhile (its new owner answers it),
each reported to the observer once Kafka has it. With tracing on, each carries its request
span's context in its headers, and the request span ends when Kafka has the result."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

from streams.clock import epoch_ms, mono_to_epoch
from streams.worker.emitter import Emitter
from streams.worker.jobs import Job
from streams.worker.observer import WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import OnSent
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
        if not self._current(job, result):
            return
        sent = self._on_sent(result, job, batch_started, inference_started)
        await self._emitter.result(result, job.source, job.reply_topic, on_sent=sent,
                                   headers=job.trace_headers)

    async def dead_letter(self, result: dict[str, Any], job: Job,
                          error: BaseException | str) -> None:
        """An error result the model gave `job`, with the request's dead letter."""
        if not self._current(job, result):
            return
        sent = self._on_sent(result, job, None, None)
        await self._rejector.failed(result, job.source, job.reply_topic, error, sent,
                                    job.trace_headers)

    def _on_sent(self, result: dict[str, Any], job: Job, batch_started: float | None,
                 inference_started: float | None) -> OnSent:
        """What to do once Kafka has `result`: report it, and close the request's span (whose
        stage spans are made now, from the timings the result reports)."""
        source, trace = job.source, job.trace
        publishing = 0.0
        if trace is not None:
            trace.stages(job.enqueued_at_ms, result)
            publishing = epoch_ms()

        def sent(published: dict[str, Any] | None) -> None:
            self._observer.result_sent(published or result, source,
                                       mono_to_epoch(batch_started),
                                       mono_to_epoch(inference_started), job.item.task,
                                       job.item.priority)
            if trace is not None:
                trace.finished(publishing, published or result)

        return sent

    async def publish_chunk(self, chunk: dict[str, Any], job: Job
                            ) -> asyncio.Future[Any] | None:
        if not self._tracker.is_current(job.source.tp, job.source.generation):
            return None  # no chunk of a revoked partition leaves after its hand-over
        return await self._emitter.chunk(chunk, job.trace_headers)

    def _current(self, job: Job, result: dict[str, Any]) -> bool:
        if self._tracker.is_current(job.source.tp, job.source.generation):
            return True
        self._observer.abandoned(1)  # revoked meanwhile: the new owner answers it
        if job.trace is not None:
            job.trace.dropped("handover")
        self._observer.replayed(result, "handover")
        return False
