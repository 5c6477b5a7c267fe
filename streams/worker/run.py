"""`streamserve worker`: load models, start the engine inside the faust app, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import uvloop

from streams.app import build_app, serve_with_app
from streams.codec import request_codec, result_codec
from streams.config import Settings
from streams.topics import ensure_topics, service_topics
from streams.worker.engine import WorkerEngine
from streams.worker.models_loader import load_served_models
from streams.worker.observer import NullObserver, WorkerObserver
from streams.worker.options import EngineOptions
from streams.worker.served import ServedModels

logger = logging.getLogger(__name__)


def _progress(message: str) -> None:
    print(f"[worker] {message}", file=sys.stderr, flush=True)


async def serve(settings: Settings, served: ServedModels,
                observer: WorkerObserver | None = None,
                render_metrics: Any = None) -> None:
    """Run one worker until SIGTERM/SIGINT, then drain gracefully."""
    await ensure_topics(settings, service_topics(settings))
    options = EngineOptions.from_settings(settings)
    engine = WorkerEngine(options, served, request_codec(), result_codec(),
                          observer or NullObserver())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.stop)

    def ready() -> dict[str, Any]:
        return {"ready": engine.ready, "worker_id": options.worker_id,
                "partitions": sorted(tp.partition for tp in engine.assigned),
                "models": [f"{m.name}:{m.version}" for m in served]}

    app = build_app(f"streamserve-{options.worker_id}", settings.kafka_bootstrap_servers,
                    settings.web_host, settings.web_port, render_metrics or _no_metrics,
                    lambda: True, ready)
    _progress(f"{options.worker_id} serving {[m.name for m in served]} from "
              f"{settings.requests_topic} (web on {settings.web_host}:{settings.web_port})")
    await serve_with_app(app, engine.run)
    _progress(f"{options.worker_id} stopped after {engine.consumed} records")


def _no_metrics() -> tuple[bytes, str]:
    return b"", "text/plain"


def run_worker(settings: Settings) -> int:
    served = load_served_models(settings, progress=_progress)
    uvloop.run(serve(settings, served))
    for model in served:
        model.runner.close()
    return 0
