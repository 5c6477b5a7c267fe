"""What users write first with Quix Streams: an Application with a StreamingDataFrame that
decodes each message, calls the real MiniLM once per message and writes the result topic.
Runs with the interpreter of `.cache/bench-quix/venv` (see bench/quix_env.py)."""

from __future__ import annotations

from quixstreams import Application

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.one_call import OneCallPerMessage
from bench.contenders.warmup import loaded_and_warm, quiet_logging


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config, batch_size=1)
    answer = OneCallPerMessage(runner, config.worker_id)
    app = Application(broker_address=config.bootstrap, consumer_group=config.group,
                      auto_offset_reset="earliest", loglevel="WARNING")
    requests = app.topic(config.requests_topic, value_deserializer="bytes",
                         key_deserializer="bytes")
    results = app.topic(config.results_topic, value_serializer="bytes", key_serializer="bytes")

    def infer(value: bytes) -> bytes:
        return answer(value)[1]

    app.dataframe(requests).apply(infer).to_topic(results)
    ready_then_wait_for_go(config)
    app.run()


if __name__ == "__main__":
    main()
