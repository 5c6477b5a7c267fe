"""What users write first with faust: one agent over the requests topic, one model call and one
`send` per message (raw bytes in, our Avro codec, the real MiniLM), default faust settings."""

from __future__ import annotations

import time

import faust
from faust.worker import Worker

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
    app = faust.App(config.group, broker=f"kafka://{config.bootstrap}", value_serializer="raw",
                    key_serializer="raw", store="memory://", web_port=config.web_port,
                    autodiscover=False)
    requests = app.topic(config.requests_topic, value_serializer="raw", key_serializer="raw")
    results = app.topic(config.results_topic, value_serializer="raw", key_serializer="raw")

    @app.agent(requests)
    async def infer(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            request = requests_codec.decode(value)
            header = RequestHeader.of(request, time.time() * 1000.0)
            started = time.time() * 1000.0
            output = runner.run("embed", [ModelInput(header.request_id, text=request["text"])])
            finished = time.time() * 1000.0
            result = ok_result(header, output[0], model_version=runner.version,
                               worker_id=config.worker_id, completed_at_ms=int(finished),
                               timings=Timings(inference_ms=finished - started), batch_size=1)
            await results.send(key=header.request_id.encode(), value=results_codec.encode(result))

    ready_then_wait_for_go(config)
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
