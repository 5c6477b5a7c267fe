"""The baseline: a hand-written aiokafka loop doing the same work as the worker, nothing more.

consume a fetch → decode each request (Avro) → one model call per partition batch → build and
encode each result → produce (same producer options as the worker: acks=all, idempotent) →
wait for the acks → commit. Under uvloop, like the worker.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.ours import settings_for
from bench.contenders.warmup import loaded_and_warm, quiet_logging
from bench.runners import task_of
from models.base import ModelInput, ModelRunner
from streams.codec import request_codec, result_codec
from streams.kafka_options import consumer_options, producer_options
from streams.results import RequestHeader, Timings, ok_result


async def run(config: ContenderConfig, runner: ModelRunner) -> None:
    settings = settings_for(config, Path("."))
    consumer = AIOKafkaConsumer(config.requests_topic, **consumer_options(settings, config.group),
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(**producer_options(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    requests, results = request_codec(), result_codec()
    task: Any = task_of(config.model)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=1000)
            pending = []
            offsets = {}
            for tp, records in fetched.items():
                received = time.time() * 1000.0
                headers = []
                inputs = []
                for record in records:
                    request = requests.decode(record.value or b"")
                    header = RequestHeader.of(request, received)
                    headers.append(header)
                    inputs.append(ModelInput(header.request_id, text=request["text"]))
                started = time.time() * 1000.0
                outputs = runner.run(task, inputs)
                finished = time.time() * 1000.0
                timings = Timings(inference_ms=finished - started)
                for header, output in zip(headers, outputs, strict=True):
                    result = ok_result(header, output, model_version=runner.version,
                                       worker_id=config.worker_id,
                                       completed_at_ms=int(finished), timings=timings,
                                       batch_size=len(inputs))
                    pending.append(await producer.send(
                        config.results_topic, results.encode(result),
                        key=header.request_id.encode()))
                offsets[tp] = records[-1].offset + 1
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config)
    ready_then_wait_for_go(config)
    uvloop.run(run(config, runner))


if __name__ == "__main__":
    main()
