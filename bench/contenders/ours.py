"""The contender under test: the real worker, wired as `streams.worker.run.run_worker` wires it
(WorkerEngine inside the faust app under uvloop, Prometheus metrics, the request-log sink only
when the config names a sink dir), serving one model with max_batch_size = the batch size."""

from __future__ import annotations

import time
from pathlib import Path

import uvloop

from bench.contenders.config import ContenderConfig, ready_then_wait_for_go
from bench.contenders.warmup import loaded_and_warm, quiet_logging
from streams.analytics.sink.clickhouse import open_request_log_sink
from streams.analytics.sink.request_log import RequestLogRow
from streams.config import Settings
from streams.worker.health import Health
from streams.worker.heap import settle_heap
from streams.worker.metrics import WorkerMetrics
from streams.worker.options import EngineOptions
from streams.worker.run import serve
from streams.worker.served import ServedModel, ServedModels
from streams.worker.telemetry import Telemetry


def settings_for(config: ContenderConfig, data_dir: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers=config.bootstrap, requests_topic=config.requests_topic,
        results_topic=config.results_topic, dlq_topic=config.dlq_topic,
        tokens_topic=config.tokens_topic, consumer_group=config.group, topic_partitions=4,
        max_batch_size=config.batch_size, max_wait_ms=config.max_wait_ms,
        torch_threads=config.torch_threads, web_port=config.web_port, data_dir=data_dir,
        log_level="WARNING", request_log=config.sink_dir is not None,
        registry_reload_s=0,  # the served model is built here, not read from the registry
        delivery=config.delivery,  # type: ignore[arg-type]
        control_enabled=config.control)


def main() -> None:
    quiet_logging()
    config = ContenderConfig.from_argv()
    runner = loaded_and_warm(config)
    served = ServedModels.of([ServedModel(config.model, runner.version, runner)])
    data_dir = Path(config.sink_dir or Path(config.ready_file).parent / config.worker_id)
    settings = settings_for(config, data_dir)
    metrics = WorkerMetrics(Health(("models_loaded", "partitions_assigned")))
    metrics.set_ready("models_loaded", True)
    options = EngineOptions.from_settings(settings)
    sink = open_request_log_sink(settings, name=config.worker_id) if settings.request_log \
        else None
    if sink is not None:
        metrics.bind_sink(sink)
        # Warm the sink too: its ClickHouse client (the chDB engine) opens on the first insert.
        now = time.time()
        sink.add(RequestLogRow("bench-warm-up", config.model, "ok", created_at=now,
                               completed_at=now))
        sink.flush(timeout=120.0)
    ready_then_wait_for_go(config)
    settle_heap()  # as run_worker does, once everything long-lived is loaded
    try:
        uvloop.run(serve(settings, options, served, Telemetry(metrics, sink)))
    finally:
        if sink is not None:
            sink.close(timeout=60.0)
        runner.close()


if __name__ == "__main__":
    main()
