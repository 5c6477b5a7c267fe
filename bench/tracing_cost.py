"""Stage 9, tracing: what trace context costs the worker's per-record hot path, in one run.

The real admission → answer → emitter path of one record (decode, validate, route, queue in a
lane, result built and encoded, published, acknowledged, reported), in process with a producer
that acknowledges at once, so the worker's own code is all that is timed. Three arms, each
record carrying a valid `traceparent`:
- `bypass`: the facade out of the path (the answer path as it was before tracing; the request
  span is never asked for) — the baseline;
- `off`: tracing off, as shipped (the `is None` checks);
- `on`: tracing on, spans to the SDK's in-memory exporter (one per request, its five stage
  spans, one batch span per 32 requests).
Arms alternate within every round, in a rotating order (the machine is noisy); the figures
are the per-round ratios to `bypass`: median and range.

    .venv/bin/python -m bench.tracing_cost [--records 1000] [--rounds 21]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

from aiokafka import TopicPartition

from bench.common import figure, med, ratio
from bench.context import Context
from models.base import ModelOutput
from models.fake import FakeRunner, fake_spec
from streams.client.library import new_request
from streams.clock import epoch_ms, mono_ms
from streams.protocol.results import Timings, ok_result
from streams.tracing.propagation import inject
from streams.tracing.setup import memory_tracing
from streams.wire.codec import request_codec, result_codec, token_codec
from streams.worker.admission import Admission
from streams.worker.answers import Answers
from streams.worker.emitter import Emitter
from streams.worker.jobs import Job, Source
from streams.worker.observer import NullObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import Topics
from streams.worker.rejection import Rejector
from streams.worker.replies import ReplyPolicy, ReplyTopics
from streams.worker.served import ServedModel, ServedModels

ARMS = ("bypass", "off", "on")
BATCH = 32
TP = TopicPartition("req", 0)
HEADERS = inject(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1)


class AckedProducer:
    """Acknowledges every record at once: only the worker's code is timed."""

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: Any = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Lane:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def admit(self, job: Job) -> None:
        self.jobs.append(job)


class BypassAnswers(Answers):
    """The answer path without the tracing facade (its body before tracing existed)."""

    async def publish(self, result: dict[str, Any], job: Job, batch_started: float | None,
                      inference_started: float | None) -> None:
        if not self._current(job, result):
            return

        def sent(published: dict[str, Any] | None) -> None:
            self._observer.result_sent(published or result, job.source, None, None,
                                       job.item.task, job.item.priority)

        await self._emitter.result(result, job.source, job.reply_topic, on_sent=sent)


class BypassAdmission(Admission):
    def _trace(self, *args: Any) -> None:  # no tracer to ask: the request span never exists
        return None


async def _no_topics() -> set[str]:
    return set()


async def one_pass(arm: str, payloads: list[bytes]) -> float:
    """Seconds per record of `arm` over `payloads`."""
    tracer = memory_tracing()[0] if arm == "on" else None
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    generation = tracker.assign(TP)
    observer, lane = NullObserver(), Lane()
    emitter = Emitter(AckedProducer(), result_codec(), tracker, Topics("res", "dlq", "tok"),
                      lambda error: None, token_codec(), max_record_bytes=1 << 22,
                      rejected_for=lambda result, code, message: result)
    rejector = Rejector(emitter, observer, "w", tracing=tracer is not None)
    answers = (BypassAnswers if arm == "bypass" else Answers)(tracker, emitter, rejector,
                                                               observer)
    served = ServedModels.of([ServedModel("echo", "1", FakeRunner(fake_spec(
        "echo", tasks=("generate",), max_input_tokens=64, max_new_tokens=8)))])
    replies = ReplyTopics(ReplyPolicy("res", "inference.replies.", {"req"}), _no_topics)
    admission = (BypassAdmission if arm == "bypass" else Admission)(
        request_codec(), lambda: served, {("echo", "1"): lane},  # type: ignore[dict-item]
        replies, rejector, answers.publish, observer, "w", None, tracer)
    output, timings = ModelOutput(text="hello", tokens_out=1), Timings(inference_ms=1.0)
    gc.collect()  # one arm's garbage is not collected on another arm's time
    gc.disable()
    try:
        started = time.perf_counter()
        for offset, payload in enumerate(payloads):
            tracker.started(TP, generation, offset, len(payload))
            await admission.admit(Source(TP, offset, epoch_ms(), generation, None, payload,
                                         HEADERS), len(payload))
            if len(lane.jobs) == BATCH or offset == len(payloads) - 1:
                jobs, lane.jobs, formed = lane.jobs, [], mono_ms()
                if tracer is not None:  # as the static lane does after each batch
                    tracer.batch("echo", [job.trace for job in jobs], formed, mono_ms())
                for job in jobs:
                    result = ok_result(job.item.header, output, model_version="1", worker_id="w",
                                       completed_at_ms=int(epoch_ms()), timings=timings,
                                       batch_size=len(jobs))
                    await answers.publish(result, job, formed, formed)
                await asyncio.sleep(0)  # the acknowledgement callbacks run
        await asyncio.sleep(0)
        elapsed = time.perf_counter() - started
    finally:
        gc.enable()
    assert tracker.in_flight() == 0, "every record answered and acknowledged"
    return elapsed / len(payloads)


def measure(records: int, rounds: int) -> dict[str, Any]:
    """Per-record µs of each arm and the per-round ratios to `bypass`, interleaved."""
    codec = request_codec()
    payloads = [codec.encode(new_request("echo", "generate", text=f"hello world {i}",
                                         request_id=f"r{i}")) for i in range(records)]
    per_record: dict[str, list[float]] = {arm: [] for arm in ARMS}

    async def run() -> None:
        await one_pass("on", payloads[:100])  # warm: imports, codec caches, the SDK
        for index in range(rounds):
            for arm in ARMS[index % 3:] + ARMS[:index % 3]:
                per_record[arm].append(await one_pass(arm, payloads) * 1e6)

    asyncio.run(run())
    out: dict[str, Any] = {"records": records, "rounds": rounds,
                           "us_per_record": {arm: figure(v) for arm, v in per_record.items()}}
    for arm in ("off", "on"):
        out[f"{arm}_over_bypass"] = figure([ratio(a, b) for a, b in zip(
            per_record[arm], per_record["bypass"], strict=True)])
    return out


def run(ctx: Context) -> dict[str, Any]:
    """The bench stage (no broker needed: the hot path runs in process)."""
    return measure(1000 if ctx.mode.is_measurement else 200, 7 * ctx.mode.reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    data = measure(args.records, args.rounds)
    print(json.dumps(data, indent=1))
    print(f"tracing off / bypass: median {med(data['off_over_bypass']):.3f} "
          f"(range {data['off_over_bypass']['min']:.3f}-{data['off_over_bypass']['max']:.3f}); "
          f"on / bypass: median {med(data['on_over_bypass']):.3f} "
          f"(range {data['on_over_bypass']['min']:.3f}-{data['on_over_bypass']['max']:.3f})")


if __name__ == "__main__":
    main()
