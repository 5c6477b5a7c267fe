"""The contender under test: the real worker (`streams.worker.run.serve`: WorkerEngine inside
the faust app, uvloop), serving one model with max_batch_size = the config's batch size."""

from __future__ import annotations

from pathlib import Path

import uvloop

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.sink_observer import SinkObserver
from bench.contenders.warmup import loaded_and_warm, quiet_logging
from streams.config import Settings
from streams.worker.run import serve
from streams.worker.served import ServedModel, ServedModels


def settings_for(config: ContenderConfig, data_dir: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers=config.bootstrap, requests_topic=config.requests_topic,
        results_topic=config.results_topic, dlq_topic=config.dlq_topic,
        tokens_topic=config.tokens_topic, consumer_group=config.group, topic_partitions=4,
        max_batch_size=config.batch_size, max_wait_ms=config.max_wait_ms,
        torch_threads=config.torch_threads, web_port=config.web_port, data_dir=data_dir,
        log_level="WARNING")


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config)
    served = ServedModels.of([ServedModel(config.model, runner.version, runner)])
    data_dir = Path(config.sink_dir or Path(config.ready_file).parent / config.worker_id)
    settings = settings_for(config, data_dir)
    observer = SinkObserver.open(settings, config.worker_id) if config.sink_dir else None
    ready_then_wait_for_go(config)
    try:
        uvloop.run(serve(settings, served, observer))
    finally:
        if observer is not None:
            observer.close()
        runner.close()


if __name__ == "__main__":
    main()
