"""The baseline: a hand-written aiokafka loop doing the same work as the worker, nothing more.

consume a fetch → decode each request (Avro) → one model call per partition batch → build and
encode each result → produce (same producer options as the worker: acks=all, idempotent) →
commit once the results are acknowledged. Under uvloop, like the worker. Two variants:
- serial (default): wait for the acks and the commit before the next fetch;
- pipelined: acks and commits run behind the next fetch (at most 4 batches outstanding,
  commits in order), the fastest loop measured (docs/design.md).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.ours import settings_for
from bench.contenders.warmup import loaded_and_warm, quiet_logging
from bench.runners import task_of
from models.base import ModelInput, ModelRunner
from streams.kafka.options import consumer_options, producer_options
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, ok_result
from streams.wire.codec import RecordCodec, request_codec, result_codec

MAX_OUTSTANDING = 4


class RawLoop:
    def __init__(self, config: ContenderConfig, runner: ModelRunner) -> None:
        settings = settings_for(config, Path("."))
        self.config = config
        self.runner = runner
        self.task: Any = task_of(config.model)
        self.consumer = AIOKafkaConsumer(config.requests_topic,
                                         **consumer_options(settings, config.group),
                                         max_partition_fetch_bytes=4 * 1024 * 1024)
        self.producer = AIOKafkaProducer(**producer_options(settings))
        self.requests: RecordCodec = request_codec()
        self.results: RecordCodec = result_codec()

    async def _publish(self, records: list[ConsumerRecord[Any, Any]]) -> list[Any]:
        received = time.time() * 1000.0
        headers, inputs = [], []
        for record in records:
            request = self.requests.decode(record.value or b"")
            header = RequestHeader.of(request, received)
            headers.append(header)
            inputs.append(ModelInput(header.request_id, text=request["text"]))
        started = time.time() * 1000.0
        outputs = self.runner.run(self.task, inputs)
        finished = time.time() * 1000.0
        timings = Timings(inference_ms=finished - started)
        pending = []
        for header, output in zip(headers, outputs, strict=True):
            result = ok_result(header, output, model_version=self.runner.version,
                               worker_id=self.config.worker_id, completed_at_ms=int(finished),
                               timings=timings, batch_size=len(inputs))
            pending.append(await self.producer.send(
                self.config.results_topic, self.results.encode(result),
                key=header.request_id.encode()))
        return pending

    async def _ack_then_commit(self, pending: list[Any], offsets: dict[TopicPartition, int],
                               previous: asyncio.Task[None] | None) -> None:
        await asyncio.gather(*pending)
        if previous is not None:
            await previous  # commits stay in order
        await self.consumer.commit(offsets)

    async def run(self) -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        pipelined = self.config.variant == "pipelined"
        outstanding: deque[asyncio.Task[None]] = deque()
        previous: asyncio.Task[None] | None = None
        await self.producer.start()
        await self.consumer.start()
        try:
            while not stop.is_set():
                fetched = await self.consumer.getmany(timeout_ms=100, max_records=1000)
                pending: list[Any] = []
                offsets = {}
                for tp, records in fetched.items():
                    pending += await self._publish(records)
                    offsets[tp] = records[-1].offset + 1
                if not pending:
                    continue
                if not pipelined:
                    await asyncio.gather(*pending)
                    await self.consumer.commit(offsets)
                    continue
                previous = asyncio.create_task(self._ack_then_commit(pending, offsets, previous))
                outstanding.append(previous)
                while len(outstanding) > MAX_OUTSTANDING or (outstanding and outstanding[0].done()):
                    await outstanding.popleft()
            await asyncio.gather(*outstanding)
        finally:
            await self.consumer.stop()
            await self.producer.stop()


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config)
    ready_then_wait_for_go(config)

    async def serve() -> None:  # aiokafka clients are built on the running loop
        await RawLoop(config, runner).run()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
