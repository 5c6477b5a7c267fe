"""What users write first with Quix Streams: an Application with a StreamingDataFrame that
decodes each message, calls the real MiniLM once per message and writes the result topic.
Runs with the interpreter of `.cache/bench-quix/venv` (see bench/quix_env.py)."""

from __future__ import annotations

import time

from quixstreams import Application

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.warmup import loaded_and_warm, quiet_logging
from models.base import ModelInput
from streams.codec import request_codec, result_codec
from streams.results import RequestHeader, Timings, ok_result


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config, batch_size=1)
    requests_codec, results_codec = request_codec(), result_codec()
    app = Application(broker_address=config.bootstrap, consumer_group=config.group,
                      auto_offset_reset="earliest", loglevel="WARNING")
    requests = app.topic(config.requests_topic, value_deserializer="bytes",
                         key_deserializer="bytes")
    results = app.topic(config.results_topic, value_serializer="bytes", key_serializer="bytes")

    def infer(value: bytes) -> bytes:
        request = requests_codec.decode(value)
        header = RequestHeader.of(request, time.time() * 1000.0)
        started = time.time() * 1000.0
        output = runner.run("embed", [ModelInput(header.request_id, text=request["text"])])
        finished = time.time() * 1000.0
        result = ok_result(header, output[0], model_version=runner.version,
                           worker_id=config.worker_id, completed_at_ms=int(finished),
                           timings=Timings(inference_ms=finished - started), batch_size=1)
        return results_codec.encode(result)

    app.dataframe(requests).apply(infer).to_topic(results)
    ready_then_wait_for_go(config)
    app.run()


if __name__ == "__main__":
    main()
