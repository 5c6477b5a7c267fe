"""The lane of a generative model served by a continuous-batching engine.

Requests are admitted one by one, most urgent first, whenever the engine has a free sequence
slot, and join the running batch between decode steps (iteration-level scheduling); finished
ones leave at once. Requests with `stream=true` get their text as `TokenChunk` events on the
tokens topic; everyone gets the final result on the results topic. The engine calls back from its
own thread: events hop onto the event loop with `call_soon_threadsafe`.

Failures: a generation past the model's `batch_timeout_s` is cancelled, answered `model_timeout`
and marks the worker not alive; an error the engine calls transient (its manager died and was
replaced) is retried up to `transient_retries` times if no token was streamed yet; other errors
answer `model_error` with a dead letter. Consecutive failed generations open the breaker.
On revocation the generations of revoked partitions are cancelled, not awaited: their new owner
redoes them, and no chunk of theirs leaves this worker after the hand-over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from aiokafka import TopicPartition

from models.base import StreamingGenerator, TokenEvent
from streams.clock import epoch_ms, mono_ms, sleep_until
from streams.policy.batching import MicroBatcher
from streams.protocol.results import error_result, ok_result
from streams.worker.jobs import Job
from streams.worker.lanes.base import Lane, LaneHooks
from streams.worker.lanes.generation import Generation
from streams.worker.served import ServedModel

logger = logging.getLogger(__name__)

class StreamingLane(Lane):
    def __init__(self, model: ServedModel, queue: MicroBatcher[Job], hooks: LaneHooks) -> None:
        assert isinstance(model.runner, StreamingGenerator)
        self.engine: StreamingGenerator = model.runner
        super().__init__(model, queue, hooks, self.engine.max_batch_size)
        self._active: dict[int, Generation] = {}  # by slot
        self._loop_ref: asyncio.AbstractEventLoop | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return bool(self._active)

    async def idle(self) -> None:
        """Until every admitted request finished and published its result."""
        await self._idle.wait()

    async def abandon(self, partitions: Collection[TopicPartition]) -> int:
        gone = [s for s in self._active.values() if s.job.source.tp in partitions]
        for state in gone:
            state.closed = state.abandoned = True
            self._active.pop(state.slot, None)
            self.engine.cancel(state.job.item.request_id)
        for state in gone:  # a chunk being written finishes; none starts after this
            async with state.writing:
                pass
        self._settle_idle()
        return len(gone)

    def start(self) -> None:
        self._loop_ref = asyncio.get_running_loop()
        super().start()

    # ---- admission -----------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            now = mono_ms()
            await self._expire(now)
            await self._enforce_timeouts(now)
            decision = self.breaker.decide(now)
            free = self.engine.max_batch_size - len(self._active)
            if decision == "probe":
                free = min(free, 0 if self._active else 1)
            batch = self.batcher.ready(now, limit=1) if free > 0 and decision != "wait" else []
            if not batch:
                await sleep_until(self._wake, self._next_wake(free))
                continue
            for job in batch[0].items:
                self._submit(Generation(job, mono_ms(), len(self._active) + 1))

    def _next_wake(self, free: int) -> float | None:
        times = [s.admitted_at_ms + self.model.failure.batch_timeout_s * 1000
                 for s in self._active.values()]
        nxt = self._wake_at() if free > 0 or self.breaker.is_open else None
        if nxt is not None:
            times.append(nxt)
        return min(times) if times else None

    def _submit(self, state: Generation) -> None:
        job = state.job
        self._active[state.slot] = state
        self._idle.clear()
        loop = self._loop_ref
        assert loop is not None

        def on_event(event: TokenEvent) -> None:  # engine thread
            loop.call_soon_threadsafe(self._on_event, state, event)

        try:
            self.engine.submit(job.item.input, on_event)
        except Exception as exc:  # noqa: BLE001 - refused input fails this request only
            self._on_event(state, TokenEvent(job.item.request_id, "", 0, finished=True,
                                             error=f"{type(exc).__name__}: {exc}"))

    async def _enforce_timeouts(self, now: float) -> None:
        timeout_ms = self.model.failure.batch_timeout_s * 1000
        late = [s for s in self._active.values() if now - s.admitted_at_ms > timeout_ms]
        for state in late:
            state.closed = True
            self._active.pop(state.slot, None)
            self.engine.cancel(state.job.item.request_id)
            self.hooks.observer.model_failed(self.model.name, "timeout")
            self.hooks.health.fail(self.task_name, f"model {self.model.name} "
                                   f"{self.model.version}: a generation ran past its "
                                   f"{timeout_ms / 1000:.0f}s timeout")
            self._spawn(self._answer_error(state, "model_timeout",
                                           f"model {self.model.name} did not finish within "
                                           f"{timeout_ms / 1000:.0f}s", "timeout"))

    # ---- events (on the loop) ------------------------------------------------------------
    def _on_event(self, state: Generation, event: TokenEvent) -> None:
        if state.closed:
            return  # timed out or abandoned: its answer (if any) is someone else's now
        if state.first_token_at_ms is None and (event.delta or event.tokens_out):
            state.first_token_at_ms = epoch_ms()
        if event.finished and event.error is not None and self._retry(state, event):
            return
        if state.job.item.stream and (event.delta or event.finished):
            state.events.append(event)
        if event.finished:
            state.closed = True
            self._spawn(self._finish(state, event))
        elif state.job.item.stream and event.delta:
            self._spawn(self._chunk(state))

    def _retry(self, state: Generation, event: TokenEvent) -> bool:
        """Resubmit after a transient engine failure, if nothing was streamed yet."""
        policy = self.model.failure
        if not event.transient or state.seq or state.attempts >= policy.transient_retries:
            return False
        state.attempts += 1
        self.hooks.observer.model_failed(self.model.name, "transient")
        logger.warning("model %s: retrying %s after a transient failure (%s)", self.model.key,
                       state.job.item.request_id, event.error)

        async def again() -> None:
            await asyncio.sleep(policy.retry_backoff_s * 2 ** (state.attempts - 1))
            if not state.closed:
                self._submit(state)

        self._spawn(again())
        return True

    async def _chunk(self, state: Generation) -> None:
        async with state.writing:
            while state.events:
                if state.abandoned:
                    return  # its new owner streams it from the start
                event = state.events.pop(0)
                record = state.chunk(event, self.model.name, self.model.version)
                state.seq += 1
                sent = await self.hooks.publish_chunk(record, state.job)
                state.last_chunk = sent if sent is not None else state.last_chunk

    async def _finish(self, state: Generation, event: TokenEvent) -> None:
        try:
            await self._chunk(state)  # the final chunk goes out before the result
            if state.abandoned:
                return
            if state.last_chunk is not None:
                try:
                    await state.last_chunk  # acked chunks before the result: a committed offset
                except Exception as exc:  # noqa: BLE001 - the result still carries the text
                    logger.warning("a token chunk was not acknowledged: %r", exc)
            if event.error is not None or event.output is None:
                await self._answer_error(state, "model_error",
                                         f"model {self.model.name} failed on this request",
                                         "error", detail=event.error)
                return
            await self._answer_ok(state, event)
        finally:
            self._active.pop(state.slot, None)
            self._settle_idle()
            self._wake.set()

    async def _answer_ok(self, state: Generation, event: TokenEvent) -> None:
        job, finished = state.job, mono_ms()
        assert event.output is not None
        result = ok_result(job.item.header, event.output, model_version=self.model.version,
                           worker_id=self.hooks.worker_id, completed_at_ms=int(epoch_ms()),
                           timings=state.timings(finished),
                           batch_size=state.concurrency)
        if state.first_token_at_ms is not None:
            result["time_to_first_token_ms"] = (state.first_token_at_ms
                                                - job.item.header.created_at_ms)
        self._done(state, finished, success=True)
        await self.hooks.publish(result, job, state.admitted_at_ms, state.admitted_at_ms)

    async def _answer_error(self, state: Generation, code: str, message: str, kind: str,
                            detail: str | None = None) -> None:
        try:
            job, finished = state.job, mono_ms()
            result = error_result(job.item.header, code, message, worker_id=self.hooks.worker_id,
                                  completed_at_ms=int(epoch_ms()),
                                  model_version=self.model.version,
                                  timings=state.timings(finished),
                                  batch_size=state.concurrency)
            if kind == "error":
                self.hooks.observer.model_failed(self.model.name, "error")
            self._done(state, finished, success=False)
            await self.hooks.dead_letter(result, job, detail or message)
        finally:
            self._active.pop(state.slot, None)
            self._settle_idle()
            self._wake.set()

    def _done(self, state: Generation, finished: float, success: bool) -> None:
        seconds = (finished - state.admitted_at_ms) / 1000.0
        self.service_time.observe(finished - state.admitted_at_ms)
        self.computed += 1
        self.hooks.observer.batch_done(self.model.name, state.concurrency, seconds)
        self._record_outcome(success)

    def _settle_idle(self) -> None:
        if not self._active:
            self._idle.set()
