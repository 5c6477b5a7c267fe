"""The lane of a generative model served by a continuous-batching engine.

Requests are admitted one by one, highest priority first, whenever the engine has a free
sequence slot, and join the running batch between decode steps (iteration-level scheduling);
finished ones leave at once. Requests with `stream=true` get their text as `TokenChunk` events
on the tokens topic; everyone gets the final result on the results topic. The engine calls back
from its own thread: events hop onto the event loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from models.base import StreamingGenerator, TokenEvent
from streams.batching import MicroBatcher
from streams.results import Timings, error_result, expired_result, ok_result
from streams.shedding import ServiceTimeEstimate, misses_deadline
from streams.worker.jobs import Job
from streams.worker.lane import Publish, PublishChunk, now_ms, sleep_until
from streams.worker.served import ServedModel

logger = logging.getLogger(__name__)



@dataclass
class _Active:
    job: Job
    admitted_at_ms: float
    concurrency: int
    seq: int = 0
    first_token_at_ms: float | None = None
    last_chunk: asyncio.Future[Any] | None = None
    events: list[TokenEvent] = field(default_factory=list)
    # One writer at a time per request, so chunks are sent in seq order.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)


class StreamingLane:
    def __init__(self, model: ServedModel, queue: MicroBatcher[Job], worker_id: str,
                 publish: Publish, publish_chunk: PublishChunk,
                 on_batch: Callable[[str, int, float], None]) -> None:
        assert isinstance(model.runner, StreamingGenerator)
        self.model = model
        self.engine: StreamingGenerator = model.runner
        self.batcher = queue  # size-1 "batches": priority order and deadline expiry for free
        self._worker_id = worker_id
        self._publish = publish
        self._publish_chunk = publish_chunk
        self._on_batch = on_batch
        self._active: dict[str, _Active] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.service_time = ServiceTimeEstimate()
        self.computed = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.model.key

    def add(self, job: Job) -> None:
        self.batcher.add(job, job.tokens, job.enqueued_at_ms)
        self._wake.set()

    def admit(self, job: Job) -> float | None:
        """Queue `job`, or return its estimated completion when that misses its deadline."""
        completion = self.service_time.completion_ms(
            job.enqueued_at_ms, self.batcher.pending, self.engine.max_batch_size, busy=False)
        if misses_deadline(job.deadline_ms, completion):
            return completion
        self.add(job)
        return None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = asyncio.create_task(self._admit_loop(), name=f"stream-{self.model.name}")

    async def stop(self) -> None:
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)

    def remove(self, keep: Callable[[Job], bool]) -> list[Job]:
        queued = self.batcher.drain()
        for job in queued:
            if keep(job):
                self.batcher.add(job, job.tokens, job.enqueued_at_ms)
        return [job for job in queued if not keep(job)]

    async def idle(self, poll_s: float = 0.05) -> None:
        """Until every admitted request finished and published its result."""
        while self._active:
            await asyncio.sleep(poll_s)

    async def retire(self, poll_s: float = 0.05) -> None:
        while self.batcher.pending or self._active:
            self._wake.set()
            await asyncio.sleep(poll_s)
        await self.stop()

    # ---- admission -----------------------------------------------------------------------
    async def _admit_loop(self) -> None:
        while True:
            current = now_ms()
            for job in self.batcher.expire(current):
                timings = Timings(batch_wait_ms=current - job.enqueued_at_ms)
                await self._publish(expired_result(job.item.header, worker_id=self._worker_id,
                                                   completed_at_ms=int(current), timings=timings),
                                    job, None, None)
            free = self.engine.max_batch_size - len(self._active)
            batch = self.batcher.ready(current, limit=1) if free > 0 else []
            if not batch:
                await sleep_until(self._wake,
                                  self.batcher.next_deadline_ms() if free > 0 else None)
                continue
            for job in batch[0].items:
                self._submit(job)

    def _submit(self, job: Job) -> None:
        request_id = job.item.request_id
        state = _Active(job, now_ms(), len(self._active) + 1)
        self._active[request_id] = state
        loop = self._loop
        assert loop is not None

        def on_event(event: TokenEvent) -> None:  # engine thread
            loop.call_soon_threadsafe(self._on_event, state, event)

        try:
            self.engine.submit(job.item.input, on_event)
        except Exception as exc:  # noqa: BLE001 - refused input fails this request only
            self._on_event(state, TokenEvent(request_id, "", 0, finished=True, error=repr(exc)))

    # ---- events (on the loop) ------------------------------------------------------------
    def _on_event(self, state: _Active, event: TokenEvent) -> None:
        if state.first_token_at_ms is None and (event.delta or event.tokens_out):
            state.first_token_at_ms = now_ms()
        if state.job.item.stream and (event.delta or event.finished):
            state.events.append(event)
        if event.finished:
            self._spawn(self._finish(state, event))
        elif state.job.item.stream and event.delta:
            self._spawn(self._chunk(state))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)  # keep a reference until done (the loop holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _chunk(self, state: _Active) -> None:
        async with state.writing:
            while state.events:
                event = state.events.pop(0)
                record = token_chunk(state, event, self.model, int(now_ms()))
                state.seq += 1
                state.last_chunk = await self._publish_chunk(record, state.job)

    async def _finish(self, state: _Active, event: TokenEvent) -> None:
        await self._chunk(state)  # the final chunk goes out before the result
        if state.last_chunk is not None:
            await state.last_chunk  # acked chunks before the result: a committed offset
        job, finished = state.job, now_ms()
        timings = Timings(batch_wait_ms=state.admitted_at_ms - job.enqueued_at_ms,
                          inference_ms=finished - state.admitted_at_ms)
        if event.error is not None or event.output is None:
            result = error_result(job.item.header, "model_error", str(event.error)[:1000],
                                  worker_id=self._worker_id, completed_at_ms=int(finished),
                                  model_version=self.model.version, timings=timings,
                                  batch_size=state.concurrency)
        else:
            result = ok_result(job.item.header, event.output, model_version=self.model.version,
                               worker_id=self._worker_id, completed_at_ms=int(finished),
                               timings=timings, batch_size=state.concurrency)
            if state.first_token_at_ms is not None:
                result["time_to_first_token_ms"] = (state.first_token_at_ms
                                                    - job.item.header.created_at_ms)
        self.service_time.observe(finished - state.admitted_at_ms)
        self.computed += 1
        self._on_batch(self.model.name, state.concurrency, (finished - state.admitted_at_ms) / 1e3)
        await self._publish(result, job, state.admitted_at_ms, state.admitted_at_ms)
        self._active.pop(job.item.request_id, None)
        self._wake.set()


def token_chunk(state: _Active, event: TokenEvent, model: ServedModel,
                emitted_at_ms: int) -> dict[str, Any]:
    output = event.output
    header = state.job.item.header
    return {
        "request_id": header.request_id, "model": model.name,
        "model_version": model.version, "seq": state.seq, "delta": event.delta,
        "tokens_out": event.tokens_out, "final": event.finished,
        "finish_reason": (output.finish_reason if output else "error") if event.finished
        else None,
        "tokens_in": output.tokens_in if output else 0, "error": event.error,
        "created_at": header.created_at_ms, "emitted_at": emitted_at_ms,
    }
