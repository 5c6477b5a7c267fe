"""The lane of a model served in micro-batches: a batcher feeding one model thread.

One batch computes at a time (in `ModelThread`, off the event loop) while the next one gathers.
The most urgent ready batch goes first, across the lane's task queues. Failures are data:
- a batch that raises is retried in place when the error may be transient (device memory, a
  restarting engine: `models.errors.is_transient`), up to the model's `transient_retries` with
  doubling back-off, then split in halves (bisection) so that only the requests that fail on
  their own get `model_error` — each with its dead letter — and the rest are answered;
- a call past the model's `batch_timeout_s` fails its batch with `model_timeout` and marks the
  worker not alive: the thread may be wedged for good, so the lane stops and the process is
  restarted; its queued jobs stay uncommitted for the next owner;
- consecutive batches in which every request failed open the circuit breaker (`Lane`).
In-place retries rather than a retry topic: a retry topic would commit the failed record and
re-read it later, which doubles the records per failure and loses batch-mates' ordering, while a
retry in place costs only the back-off and keeps the offset uncommitted until an outcome exists.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiokafka import TopicPartition

from models.base import ModelInput, ModelOutput, Task
from models.errors import is_transient
from streams.clock import epoch_ms, mono_ms, sleep_until
from streams.policy.batching import Batch, MicroBatcher
from streams.protocol.chunks import final_chunk_of
from streams.protocol.results import Timings, error_result, ok_result
from streams.worker.jobs import Job
from streams.worker.lanes.base import Lane, LaneHooks
from streams.worker.lanes.model_thread import ModelCallTimeout, ModelThread
from streams.worker.served import ServedModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failed:
    """A request the model failed on its own (after retries and isolation)."""

    error: BaseException


class StaticLane(Lane):
    def __init__(self, model: ServedModel, batcher: MicroBatcher[Job], hooks: LaneHooks) -> None:
        super().__init__(model, batcher, hooks, batcher.max_batch_size)
        self._thread = ModelThread(f"model-{model.name}")
        self._computing: Batch[Job] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.wedged = False  # a call timed out: nothing more is computed here

    @property
    def busy(self) -> bool:
        return self._computing is not None

    async def idle(self) -> None:
        await self._idle.wait()

    async def abandon(self, partitions: Collection[TopicPartition]) -> int:
        # A forward pass cannot be interrupted; the engine drops the results of revoked
        # partitions (stale generation), so revocation never waits for the computing batch.
        batch = self._computing
        return 0 if batch is None else sum(j.source.tp in partitions for j in batch.items)

    def close(self) -> None:
        self._thread.close()

    async def _loop(self) -> None:
        while True:
            now = mono_ms()
            await self._expire(now)
            decision = self.breaker.decide(now)
            batches = [] if self.wedged or decision == "wait" else self.batcher.ready(now, 1)
            if not batches:
                await sleep_until(self._wake, None if self.wedged else self._wake_at())
                continue
            batch = self._probe(batches[0]) if decision == "probe" else batches[0]
            self._computing = batch
            self._idle.clear()
            try:
                await self._run(batch, probe=decision == "probe")
            finally:
                self._computing = None
                self._idle.set()

    def _probe(self, batch: Batch[Job]) -> Batch[Job]:
        """One request alone tests an open breaker; the rest goes back to the queue."""
        for job in batch.items[1:]:
            self.add(job)
        return Batch(batch.key, batch.items[:1], batch.tokens[:1], batch.enqueued_at_ms[:1],
                     batch.formed_at_ms)

    async def _run(self, batch: Batch[Job], probe: bool) -> None:
        jobs = batch.items
        task: Task = jobs[0].item.task
        started = mono_ms()
        try:
            outcomes = await self._compute(task, jobs)
        except ModelCallTimeout as exc:
            await self._timed_out(batch, started, exc)
            return
        finished = mono_ms()
        self.service_time.observe(finished - started)
        self.computed += len(jobs)
        self.hooks.observer.batch_done(self.model.name, len(jobs), (finished - started) / 1e3)
        if self.hooks.tracer is not None:
            self.hooks.tracer.batch(self.model.name, [job.trace for job in jobs],
                                    batch.formed_at_ms, finished)
        answered = any(not isinstance(outcome, Failed) for outcome in outcomes)
        self._record_outcome(answered)
        if probe and not answered:
            for job in jobs:  # the breaker stays open: not final, back to the queue
                self.add(job, mono_ms())
            return
        for index, (job, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
            timings = Timings(batch_wait_ms=batch.batch_wait_ms(index),
                              queue_wait_ms=started - batch.formed_at_ms,
                              inference_ms=finished - started)
            await self._answer(job, outcome, timings, len(jobs), batch.formed_at_ms, started)

    async def _compute(self, task: Task, jobs: Sequence[Job]) -> list[ModelOutput | Failed]:
        """One outcome per job: transient failures retried, the rest isolated by bisection."""
        policy = self.model.failure
        inputs = [job.item.input for job in jobs]
        attempt = 0
        while True:
            try:
                return list(await self._call(task, inputs))
            except ModelCallTimeout:
                raise
            except Exception as exc:  # noqa: BLE001 - a model failure is data, never a crash
                transient = is_transient(exc)
                self.hooks.observer.model_failed(self.model.name,
                                                 "transient" if transient else "error")
                if transient and attempt < policy.transient_retries:
                    await asyncio.sleep(policy.retry_backoff_s * 2**attempt)
                    attempt += 1
                    continue
                if len(jobs) == 1:
                    logger.warning("model %s failed request %s: %r", self.model.key,
                                   jobs[0].item.request_id, exc)
                    return [Failed(exc)]
                middle = len(jobs) // 2
                return (await self._compute(task, jobs[:middle])
                        + await self._compute(task, jobs[middle:]))

    async def _call(self, task: Task, inputs: list[ModelInput]) -> list[ModelOutput]:
        runner = self.model.runner
        outputs = await self._thread.call(lambda: runner.run(task, inputs),
                                          self.model.failure.batch_timeout_s)
        if outputs is None or len(outputs) != len(inputs):
            raise RuntimeError(f"runner returned {len(outputs or [])} outputs for "
                               f"{len(inputs)} inputs")
        return outputs

    async def _timed_out(self, batch: Batch[Job], started: float, exc: ModelCallTimeout) -> None:
        timeout = self.model.failure.batch_timeout_s
        self.wedged = True
        self.hooks.observer.model_failed(self.model.name, "timeout")
        self.hooks.health.fail(self.task_name, f"model {self.model.name} {self.model.version}: "
                               f"a batch ran past its {timeout:.0f}s timeout")
        logger.error("model %s: batch of %d past its %.0fs timeout; lane stopped, worker "
                     "unhealthy", self.model.key, len(batch.items), timeout)
        timings = Timings(queue_wait_ms=started - batch.formed_at_ms,
                          inference_ms=mono_ms() - started)
        for job in batch.items:
            result = error_result(job.item.header, "model_timeout",
                                  f"model {self.model.name} did not answer within {timeout:.0f}s",
                                  worker_id=self.hooks.worker_id,
                                  completed_at_ms=int(epoch_ms()),
                                  model_version=self.model.version, timings=timings,
                                  batch_size=len(batch.items))
            await self._stream_end(result, job)
            await self.hooks.dead_letter(result, job, exc)

    async def _answer(self, job: Job, outcome: ModelOutput | Failed, timings: Timings,
                      batch_size: int, formed_at: float, started: float) -> None:
        header, done = job.item.header, int(epoch_ms())
        if isinstance(outcome, Failed):
            result = error_result(header, "model_error",
                                  f"model {self.model.name} failed on this request "
                                  f"({type(outcome.error).__name__})",
                                  worker_id=self.hooks.worker_id, completed_at_ms=done,
                                  model_version=self.model.version, timings=timings,
                                  batch_size=batch_size)
            await self._stream_end(result, job)
            await self.hooks.dead_letter(result, job, outcome.error)
            return
        result = ok_result(header, outcome, model_version=self.model.version,
                           worker_id=self.hooks.worker_id, completed_at_ms=done,
                           timings=timings, batch_size=batch_size)
        await self._stream_end(result, job)
        await self.hooks.publish(result, job, formed_at, started)

    async def _stream_end(self, result: dict[str, object], job: Job) -> None:
        """A static batch has no token-level progress: a stream gets one final chunk, sent
        (and acknowledged) before the result."""
        if not job.item.stream:
            return
        sent = await self.hooks.publish_chunk(final_chunk_of(dict(result), int(epoch_ms())),
                                              job)
        if sent is not None:
            try:
                await sent
            except Exception as exc:  # noqa: BLE001 - the result still carries the text
                logger.warning("final token chunk of %s was not acknowledged: %r",
                               job.item.request_id, exc)
