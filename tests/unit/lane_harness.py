"""Lanes in isolation: fake runners, recorded outcomes, no Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from models.base import GenerationParameters, ModelInput, Task
from models.fake import FakeRunner, fake_spec
from models.fake_streaming import FakeStreamingGenerator
from models.limits import FailurePolicy
from streams.clock import mono_ms
from streams.policy.batching import MicroBatcher
from streams.protocol.header import RequestHeader
from streams.protocol.requests import WorkItem
from streams.worker.health import Health
from streams.worker.jobs import Job, Source
from streams.worker.lanes.base import LaneHooks
from streams.worker.lanes.static import StaticLane
from streams.worker.lanes.streaming import StreamingLane
from streams.worker.observer import NullObserver
from streams.worker.served import ServedModel
from streams.worker.supervisor import Supervisor

TP0, TP1 = TopicPartition("req", 0), TopicPartition("req", 1)


class Observed(NullObserver):
    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.batches: list[int] = []

    def model_failed(self, model: str, kind: str) -> None:
        self.failures.append((model, kind))

    def batch_done(self, model: str, size: int, inference_s: float) -> None:
        self.batches.append(size)


@dataclass
class Outcomes:
    results: list[dict[str, Any]] = field(default_factory=list)
    letters: list[tuple[dict[str, Any], BaseException | str]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    chunk_sink: Callable[[dict[str, Any]], bool] = lambda chunk: True  # False: "not sent"

    async def publish(self, result: dict[str, Any], job: Job, a: float | None,
                      b: float | None) -> None:
        self.results.append(result)

    async def dead_letter(self, result: dict[str, Any], job: Job,
                          error: BaseException | str) -> None:
        self.results.append(result)
        self.letters.append((result, error))

    async def publish_chunk(self, chunk: dict[str, Any], job: Job) -> asyncio.Future[Any] | None:
        if not self.chunk_sink(chunk):
            return None
        self.chunks.append(chunk)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for result in self.results:
            grouped.setdefault(result["request_id"], []).append(result)
        return grouped


@dataclass
class Rig:
    lane: Any
    runner: Any
    outcomes: Outcomes
    health: Health
    observed: Observed
    supervisor: Supervisor


def policy(**overrides: Any) -> FailurePolicy:
    base = FailurePolicy(batch_timeout_s=5.0, transient_retries=2, retry_backoff_s=0.0,
                         breaker_after=3, breaker_cooldown_s=0.05)
    return dataclasses.replace(base, **overrides)


def job(request_id: str, text: str = "hello world", task: Task = "embed",
        tp: TopicPartition = TP0, priority: int = 0, stream: bool = False,
        deadline_ms: float | None = None, max_new_tokens: int = 8) -> Job:
    header = RequestHeader(request_id, "m", None, 1_000, 1_001.0)
    item = WorkItem(header, task, ModelInput(request_id, text,
                                             parameters=GenerationParameters(max_new_tokens)),
                    priority=priority, stream=stream)
    return Job(item, Source(tp, 0, 0.0, 1, b"k", b"v"), len(text.split()), mono_ms(),
               deadline_ms)


def hooks(outcomes: Outcomes, health: Health, observed: Observed,
          supervisor: Supervisor) -> LaneHooks:
    return LaneHooks("w1", outcomes.publish, outcomes.dead_letter, outcomes.publish_chunk,
                     observed, health, supervisor)


def static_rig(failure: FailurePolicy | None = None, batch: int = 8, wait_ms: float = 5.0,
               **spec: Any) -> Rig:
    runner = FakeRunner(fake_spec("m", tasks=("embed", "classify", "generate"),
                                  max_batch_size=batch, labels=("a", "b"), **spec))
    return _rig(StaticLane, ServedModel("m", "1", runner, failure=failure or policy()),
                runner, MicroBatcher(batch, wait_ms, 10_000))


def stream_rig(failure: FailurePolicy | None = None, slots: int = 4, token_delay_s: float = 0.0,
               **spec: Any) -> Rig:
    runner = FakeStreamingGenerator(fake_spec("m", tasks=("generate",), max_batch_size=slots,
                                              **spec), token_delay_s=token_delay_s)
    return _rig(StreamingLane, ServedModel("m", "1", runner, failure=failure or policy()),
                runner, MicroBatcher(1, 0.0, 10_000))


def _rig(kind: Any, model: ServedModel, runner: Any, batcher: MicroBatcher[Job]) -> Rig:
    health, observed, outcomes = Health(()), Observed(), Outcomes()
    supervisor = Supervisor(health, backoff_s=0.0)
    lane = kind(model, batcher, hooks(outcomes, health, observed, supervisor))
    return Rig(lane, runner, outcomes, health, observed, supervisor)


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.005)
