"""What users write first with faust: one agent over the requests topic, one model call and one
`send` per message (raw bytes in, our Avro codec, the real MiniLM), default faust settings."""

from __future__ import annotations

import faust
from faust.worker import Worker

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.one_call import OneCallPerMessage
from bench.contenders.warmup import loaded_and_warm, quiet_logging


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config, batch_size=1)
    answer = OneCallPerMessage(runner, config.worker_id)
    app = faust.App(config.group, broker=f"kafka://{config.bootstrap}", value_serializer="raw",
                    key_serializer="raw", store="memory://", web_port=config.web_port,
                    autodiscover=False)
    requests = app.topic(config.requests_topic, value_serializer="raw", key_serializer="raw")
    results = app.topic(config.results_topic, value_serializer="raw", key_serializer="raw")

    @app.agent(requests)
    async def infer(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            key, result = answer(value)
            await results.send(key=key, value=result)

    ready_then_wait_for_go(config)
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
