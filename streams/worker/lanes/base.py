"""The lane contract: one queue and one compute engine per served model (the 'agent' per model).

Both lanes — `StaticLane` (micro-batches in a model thread) and `StreamingLane` (a
continuous-batching engine) — share what this base class holds: admission with early shedding,
removal of revoked partitions' jobs, deadline expiry, retirement on hot reload, the circuit
breaker, and the supervised task their loop runs in. What they must add: `_loop`, `busy`,
`idle()`, `abandon()` (give up running work of revoked partitions) and `close()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import TopicPartition

from streams.clock import epoch_ms, mono_ms
from streams.policy.batching import MicroBatcher
from streams.policy.breaker import CircuitBreaker
from streams.policy.shedding import ServiceTimeEstimate, misses_deadline
from streams.protocol.results import Timings, expired_result
from streams.worker.health import Health
from streams.worker.jobs import Job
from streams.worker.observer import WorkerObserver
from streams.worker.served import ServedModel
from streams.worker.supervisor import Supervisor

if TYPE_CHECKING:
    from streams.tracing.spans import Tracer

logger = logging.getLogger(__name__)

# (result, job, batch_started_at_mono_ms, inference_started_at_mono_ms) -> publish
Publish = Callable[[dict[str, Any], Job, float | None, float | None], Awaitable[None]]
# (error result, job, short error) -> the result plus the request's dead letter
DeadLetter = Callable[[dict[str, Any], Job, BaseException | str], Awaitable[None]]
# (token chunk, job) -> future of its acknowledgement, None when it could not be sent
PublishChunk = Callable[[dict[str, Any], Job], Awaitable["asyncio.Future[Any] | None"]]


@dataclass(frozen=True)
class LaneHooks:
    """What a lane needs from the worker around it."""

    worker_id: str
    publish: Publish
    dead_letter: DeadLetter
    publish_chunk: PublishChunk
    observer: WorkerObserver
    health: Health
    supervisor: Supervisor
    tracer: Tracer | None = None  # batch spans; None when tracing is off


class Lane:
    def __init__(self, model: ServedModel, batcher: MicroBatcher[Job], hooks: LaneHooks,
                 capacity: int) -> None:
        self.model = model
        self.batcher = batcher
        self.hooks = hooks
        self._capacity = capacity  # requests one step of the engine takes (batch, slots)
        self._wake = asyncio.Event()
        self.service_time = ServiceTimeEstimate()
        self.breaker = CircuitBreaker(model.failure.breaker_after,
                                      model.failure.breaker_cooldown_s * 1000.0)
        self.computed = 0
        self.task_name = f"lane-{model.name}:{model.version}"
        self._tasks: set[asyncio.Task[None]] = set()  # short-lived work of this lane

    # ---- the contract ------------------------------------------------------------------
    @property
    def key(self) -> tuple[str, str]:
        return self.model.key

    @property
    def busy(self) -> bool:
        raise NotImplementedError

    async def idle(self) -> None:
        """Until nothing computes or publishes (graceful shutdown)."""
        raise NotImplementedError

    async def abandon(self, partitions: Collection[TopicPartition]) -> int:
        """Give up the running work of `partitions` (revoked: their new owner redoes it);
        returns how many requests were given up."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the lane holds besides its task (threads)."""

    async def _loop(self) -> None:
        raise NotImplementedError

    # ---- shared --------------------------------------------------------------------------
    def add(self, job: Job, enqueued_at_ms: float | None = None) -> None:
        self.batcher.add(job, job.tokens,
                         job.enqueued_at_ms if enqueued_at_ms is None else enqueued_at_ms)
        self._wake.set()

    def admit(self, job: Job) -> float | None:
        """Queue `job`, or return its estimated completion (monotonic ms) when that would miss
        its deadline: the caller sheds it instead (see streams/policy/shedding.py)."""
        completion = self.service_time.completion_ms(
            job.enqueued_at_ms, self.batcher.pending, self._capacity, self.busy)
        if misses_deadline(job.deadline_ms, completion):
            return completion
        self.add(job)
        return None

    def start(self) -> None:
        self.hooks.supervisor.spawn(self.task_name, self._loop)

    async def stop(self) -> None:
        await self.hooks.supervisor.stop(self.task_name)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the loop; a failure is logged, never lost or fatal to the lane."""
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._tasks.add(task)  # keep a reference until done (the loop holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("model %s: a lane task failed", self.model.key)

    def remove(self, keep: Callable[[Job], bool]) -> list[Job]:
        """Take out queued jobs that `keep` rejects (their partitions were revoked)."""
        queued = self.batcher.drain()
        for job in queued:
            if keep(job):
                self.batcher.add(job, job.tokens, job.enqueued_at_ms)
        return [job for job in queued if not keep(job)]

    async def retire(self, poll_s: float = 0.05) -> None:
        """Finish every queued job (nothing new arrives: routing moved on), then stop."""
        while self.batcher.pending or self.busy:
            self._wake.set()
            await asyncio.sleep(poll_s)
        await self.stop()

    async def _expire(self, now: float) -> None:
        for job in self.batcher.expire(now):
            timings = Timings(batch_wait_ms=now - job.enqueued_at_ms)
            await self.hooks.publish(expired_result(job.item.header,
                                                    worker_id=self.hooks.worker_id,
                                                    completed_at_ms=_epoch_now(),
                                                    timings=timings), job, None, None)

    def _wake_at(self) -> float | None:
        """When the loop must look again: the batcher's next event or the next probe."""
        times = [t for t in (self.batcher.next_deadline_ms(), self.breaker.next_probe_ms())
                 if t is not None]
        return min(times) if times else None

    def _record_outcome(self, success: bool) -> None:
        """A batch (or, for a streaming lane, a generation) ended: feed the breaker."""
        was_open = self.breaker.is_open
        self.breaker.record(success, mono_ms())
        if self.breaker.is_open and not was_open:
            logger.error("model %s: %d consecutive failed batches, circuit breaker open; its "
                         "queue waits uncommitted", self.model.key,
                         self.breaker.consecutive_failures)
            self.hooks.health.hold(self.task_name, f"model {self.model.name} "
                                   f"{self.model.version}: circuit breaker open after "
                                   f"{self.breaker.consecutive_failures} failed batches")
        elif was_open and not self.breaker.is_open:
            logger.warning("model %s: probe succeeded, circuit breaker closed", self.model.key)
            self.hooks.health.release(self.task_name)
        self.hooks.observer.breaker_changed(self.model.name, self.breaker.is_open)


def _epoch_now() -> int:
    return int(epoch_ms())
