"""`streamserve worker`: load models, start the engine inside the faust app, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import uvloop

from models.openmp import prefer_passive_waiting
from models.registry import load_registry
from models.triton_guard import keep_triton_unloaded
from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.clickhouse import open_request_log_sink
from streams.config import Settings
from streams.kafka.options import security_options
from streams.kafka.topics import ensure_topics, service_topics
from streams.wire.registry_catalog import open_codecs
from streams.worker.app import build_app, serve_with_app
from streams.worker.control import CAUGHT_UP, attach_control, wait_caught_up
from streams.worker.engine import WorkerEngine
from streams.worker.health import Health
from streams.worker.heap import settle_heap
from streams.worker.metrics import WorkerMetrics
from streams.worker.models_loader import load_served_models, specs_to_serve
from streams.worker.options import EngineOptions
from streams.worker.preflight import check_kafka, claim_chdb_path
from streams.worker.reload import RegistryReloader
from streams.worker.served import ServedModels
from streams.worker.telemetry import Telemetry

logger = logging.getLogger(__name__)


def _progress(message: str) -> None:
    print(f"[worker] {message}", file=sys.stderr, flush=True)


async def serve(settings: Settings, options: EngineOptions, served: ServedModels,
                telemetry: Telemetry) -> None:
    """Run one worker until SIGTERM/SIGINT, then drain gracefully."""
    await ensure_topics(settings, service_topics(settings))
    health = telemetry.metrics.health
    # The registry's ids when a schema registry is configured, else the built-in catalogue.
    codecs, schemas = await open_codecs(settings)
    engine = WorkerEngine(options, served, codecs.request, codecs.result, telemetry,
                          chunk_codec=codecs.token, health=health, schemas=schemas)
    telemetry.serving(served.names())
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        engine.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    def ready() -> dict[str, Any]:
        now = engine.served  # after hot reloads and control records, not the start-up set
        return {**health.is_ready(), "worker_id": options.worker_id,
                "partitions": sorted(tp.partition for tp in engine.assigned),
                "models": [f"{m.name}:{m.version}" for m in now],
                "routing": {name: router.split for name, router in sorted(now.routers.items())},
                "paused": sorted(now.paused)}

    app = build_app(f"streamserve-{options.worker_id}", settings.kafka_bootstrap_servers,
                    settings.web_host, settings.web_port, telemetry.metrics.render,
                    health.health_body, ready,
                    datadir=settings.data_dir / "faust" / options.worker_id,
                    kafka_options=security_options(settings) if settings.control_enabled
                    else None)
    _progress(f"{options.worker_id} serving {[m.name for m in served]} from "
              f"{settings.requests_topic} (web on {settings.web_host}:{settings.web_port})")
    reloader = RegistryReloader(settings, engine, settings.registry_reload_s)
    agent = (await attach_control(app, settings, engine, reloader, telemetry.metrics)
             if settings.control_enabled else None)

    async def main() -> None:
        if agent is not None and not await wait_caught_up(agent, stopping):
            return  # stopped before the control topic was read: nothing was consumed
        if agent is not None:
            _progress(f"control: caught up on {settings.control_topic} "
                      f"({agent.applied} applied, {agent.refused} refused)")
        watcher = (asyncio.create_task(reloader.run(), name="registry-reload")
                   if settings.registry_reload_s > 0 else None)
        try:
            await engine.run()
        finally:
            if agent is not None:
                await agent.withdraw()
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)

    await serve_with_app(app, main)
    _progress(f"{options.worker_id} stopped after {engine.consumed} records")


def run_worker(settings: Settings) -> int:
    # Cheap checks first: a missing broker or a chDB path taken by another worker is one line
    # now, not a surprise after the models have loaded.
    check_kafka(settings)
    worker_id = EngineOptions.from_settings(settings).worker_id  # the final options need models
    chdb_claim = claim_chdb_path(settings, worker_id)
    devices = [spec.device for spec in specs_to_serve(settings, load_registry(
        settings.model_registry))]
    # Before anything imports torch (the triton guard may, to resolve device "auto"): the
    # OpenMP wait policy is read once, when torch loads.
    _progress(f"OpenMP wait policy: {prefer_passive_waiting()}")
    if keep_triton_unloaded(devices):
        logger.debug("every model runs on the CPU: triton is not loaded")
    checks = ("models_loaded", "partitions_assigned")
    metrics = WorkerMetrics(Health((*checks, CAUGHT_UP) if settings.control_enabled else checks))
    served = load_served_models(settings, progress=_progress, on_loaded=metrics.model_loaded)
    metrics.set_ready("models_loaded", True)
    options = EngineOptions.from_settings(settings, served.longest_batch_s())
    sink = _open_sink(settings, options.worker_id)
    if sink is not None:
        metrics.bind_sink(sink)
    _progress(f"heap settled: {settle_heap():,} start-up objects frozen out of collections")
    try:
        uvloop.run(serve(settings, options, served, Telemetry(metrics, sink)))
    finally:
        if sink is not None and not sink.close(timeout=30.0):
            _progress("request log: some rows stay in the spool; they are replayed next start")
        for model in served:
            model.runner.close()
        if chdb_claim is not None:
            chdb_claim.close()
    return 0


def _open_sink(settings: Settings, name: str) -> RequestLogSink | None:
    if not settings.request_log:
        return None
    sink = open_request_log_sink(settings, name=name)
    where = settings.clickhouse_url or f"chDB at {settings.chdb_path}"
    _progress(f"request log -> {where} (spool {settings.data_dir / 'spool' / name}.jsonl)")
    return sink
