"""The faust application: the only module that imports faust.

The app is the worker's service container: it owns the web server (`/metrics`, `/health`,
`/ready`) and the service lifecycle, while the consume/infer/publish loop is the
`WorkerEngine` (a hand-written aiokafka loop, for the throughput and commit control measured in
docs/design.md). faust's own Kafka consumer and producer are switched off so the app does not join a
second consumer group next to the engine's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
from faust.app.base import BootStrategy
from faust.web import Request, Response, View

logger = logging.getLogger(__name__)

MetricsRenderer = Callable[[], tuple[bytes, str]]


class _WebOnlyBoot(BootStrategy):
    enable_kafka = False
    enable_kafka_consumer = False
    enable_kafka_producer = False
    enable_sensors = False


class WorkerApp(faust.App):
    BootStrategy = _WebOnlyBoot


def build_app(app_id: str, bootstrap_servers: str, web_host: str, web_port: int,
              render_metrics: MetricsRenderer, health: Callable[[], dict[str, Any]],
              is_ready: Callable[[], dict[str, Any]], datadir: Path) -> WorkerApp:
    """A faust app serving the worker's health and metrics endpoints on web_host:web_port.

    `datadir` is where faust keeps its state; left unset, faust creates `<app id>-data/` in
    the current directory."""
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = WorkerApp(
        app_id,
        # faust formats this path with its settings ("{conf...}"): escape literal braces.
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),
        broker=f"kafka://{bootstrap_servers.split(',')[0]}",
        web_host=web_host,
        web_port=web_port,
        web_bind=web_host,
        autodiscover=False,
        store="memory://",
        topic_allow_declare=False,
    )

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        body, content_type = render_metrics()
        # aiohttp refuses a charset inside `content_type`; a raw header keeps the exact
        # Prometheus text-format type (version=0.0.4; charset=utf-8).
        return web.bytes(body, headers={"Content-Type": content_type})

    @app.page("/health")
    async def alive(web: View, request: Request) -> Response:
        state = health()
        return web.json(state, status=200 if state.get("alive") else 503)

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        state = is_ready()
        return web.json(state, status=200 if state.get("ready") else 503)

    return app


async def serve_with_app(app: WorkerApp, main: Callable[[], Any]) -> None:
    """Start the app's services, run `main()` (the engine) to completion, stop the services."""
    await app.start()
    try:
        await main()
    finally:
        await app.stop()
        await asyncio.sleep(0)
