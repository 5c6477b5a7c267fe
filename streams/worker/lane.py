"""One model lane: a micro-batcher feeding one runner in its own thread (the 'agent' per model).

The runner works in a dedicated thread so the event loop keeps fetching, heartbeating and
committing while a batch computes; meanwhile the next batch gathers in the batcher. One batch
runs at a time per model: the model is the bottleneck, a second concurrent batch would only
split the same cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from models.base import ModelOutput
from streams.batching import Batch, MicroBatcher
from streams.results import Timings, error_result, expired_result, ok_result
from streams.shedding import ServiceTimeEstimate, misses_deadline
from streams.worker.jobs import Job
from streams.worker.served import ServedModel

logger = logging.getLogger(__name__)

# (result, job, batch_started_at_ms, inference_started_at_ms) -> awaitable publish
Publish = Callable[[dict[str, Any], Job, float | None, float | None], Awaitable[None]]


# (token chunk record, job) -> future of the chunk's acknowledgement
PublishChunk = Callable[[dict[str, Any], Job], Awaitable["asyncio.Future[Any]"]]


def final_chunk(result: dict[str, Any], job: Job, emitted_at_ms: int) -> dict[str, Any]:
    """The single TokenChunk of a streamed request served by a static (non-streaming) lane."""
    error = result.get("error")
    return {
        "request_id": result["request_id"], "model": result["model"],
        "model_version": result["model_version"], "seq": 0, "delta": result.get("text") or "",
        "tokens_out": result["tokens_out"], "final": True,
        "finish_reason": result.get("finish_reason") if result["status"] == "ok" else "error",
        "tokens_in": result["tokens_in"], "error": error["message"] if error else None,
        "created_at": job.item.header.created_at_ms, "emitted_at": emitted_at_ms,
    }


def now_ms() -> float:
    return time.time() * 1000.0


async def sleep_until(wake: asyncio.Event, wake_at_ms: float | None) -> None:
    """Until `wake` is set or the epoch-ms time `wake_at_ms` comes (None: only `wake`)."""
    wake.clear()
    timeout = None if wake_at_ms is None else max(0.0, (wake_at_ms - now_ms()) / 1000.0)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)


class ModelLane:
    def __init__(self, model: ServedModel, batcher: MicroBatcher[Job], worker_id: str,
                 publish: Publish, on_batch: Callable[[str, int, float], None],
                 publish_chunk: PublishChunk | None = None) -> None:
        self.model = model
        self.batcher = batcher
        self._worker_id = worker_id
        self._publish = publish
        self._on_batch = on_batch
        self._publish_chunk = publish_chunk
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"model-{model.name}")
        self._running: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()  # held while a batch computes and publishes
        self.service_time = ServiceTimeEstimate()
        self.computed = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.model.name, self.model.version)

    def add(self, job: Job) -> None:
        self.batcher.add(job, job.tokens, job.enqueued_at_ms)
        self._wake.set()

    def admit(self, job: Job) -> float | None:
        """Queue `job`, or return its estimated completion (ms) when that would miss its
        deadline: the caller sheds it instead (see streams/shedding.py)."""
        completion = self.service_time.completion_ms(
            job.enqueued_at_ms, self.batcher.pending, self.batcher.max_batch_size,
            self._busy.locked())
        if misses_deadline(job.deadline_ms, completion):
            return completion
        self.add(job)
        return None

    def start(self) -> None:
        self._running = asyncio.create_task(self._loop(), name=f"lane-{self.model.name}")

    async def stop(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def retire(self, poll_s: float = 0.05) -> None:
        """Finish every queued job (nothing new arrives: routing moved on), then stop."""
        while self.batcher.pending or self._busy.locked():
            self._wake.set()
            await asyncio.sleep(poll_s)
        await self.stop()

    async def idle(self) -> None:
        """Wait until no batch is computing or publishing (used on revocation and shutdown)."""
        async with self._busy:
            return

    def remove(self, keep: Callable[[Job], bool]) -> list[Job]:
        """Take out queued jobs that `keep` rejects (their partitions were revoked)."""
        queued = self.batcher.drain()
        dropped = [job for job in queued if not keep(job)]
        for job in queued:
            if keep(job):
                self.batcher.add(job, job.tokens, job.enqueued_at_ms)
        return dropped

    async def _loop(self) -> None:
        while True:
            current = now_ms()
            for job in self.batcher.expire(current):
                await self._publish(self._expired(job, current), job, None, None)
            batches = self.batcher.ready(current, limit=1)
            if not batches:
                await self._sleep_until(self.batcher.next_deadline_ms())
                continue
            async with self._busy:
                await self._run(batches[0])

    async def _sleep_until(self, wake_at_ms: float | None) -> None:
        await sleep_until(self._wake, wake_at_ms)

    async def _run(self, batch: Batch[Job]) -> None:
        task = batch.items[0].item.task
        inputs = [job.item.input for job in batch.items]
        started = now_ms()
        loop = asyncio.get_running_loop()
        try:
            outputs: list[ModelOutput] | None = await loop.run_in_executor(
                self._executor, self.model.runner.run, task, inputs)
            failure: BaseException | None = None
            if outputs is None or len(outputs) != len(inputs):
                failure = RuntimeError(f"runner returned {len(outputs or [])} outputs "
                                       f"for {len(inputs)} inputs")
        except Exception as exc:  # noqa: BLE001 - a model failure fails this batch only
            outputs, failure = None, exc
        finished = now_ms()
        self.service_time.observe(finished - started)
        self.computed += len(inputs)
        self._on_batch(self.model.name, len(inputs), (finished - started) / 1000.0)
        if failure is not None:
            logger.warning("model %s failed a batch of %d: %r", self.model.name, len(inputs),
                           failure)
        for index, job in enumerate(batch.items):
            timings = Timings(batch_wait_ms=batch.batch_wait_ms(index),
                              queue_wait_ms=started - batch.formed_at_ms,
                              inference_ms=finished - started)
            if outputs is None or failure is not None:
                result = error_result(job.item.header, "model_error", repr(failure)[:1000],
                                      worker_id=self._worker_id, completed_at_ms=int(finished),
                                      model_version=self.model.version, timings=timings,
                                      batch_size=len(inputs))
            else:
                result = ok_result(job.item.header, outputs[index],
                                   model_version=self.model.version, worker_id=self._worker_id,
                                   completed_at_ms=int(finished), timings=timings,
                                   batch_size=len(inputs))
            if job.item.stream and self._publish_chunk is not None:
                # A static batch has no token-level progress: a stream gets one final chunk.
                chunk = final_chunk(result, job, int(finished))
                await (await self._publish_chunk(chunk, job))
            await self._publish(result, job, batch.formed_at_ms, started)

    def _expired(self, job: Job, current: float) -> dict[str, Any]:
        timings = Timings(batch_wait_ms=current - job.enqueued_at_ms)
        return expired_result(job.item.header, worker_id=self._worker_id,
                              completed_at_ms=int(current), timings=timings)
