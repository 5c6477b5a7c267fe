"""The faust application: the worker's only faust module (streams/control holds the agents).

The app is the worker's service container: it owns the web server (`/metrics`, `/health`,
`/ready`) and the service lifecycle, while the consume/infer/publish loop is the
`WorkerEngine` (a hand-written aiokafka loop, for the throughput and commit control measured in
docs/design.md). With the control plane off, faust's own Kafka consumer and producer are
switched off. With it on (the default) they run for the control agent only: the app id is
`streamserve-<worker id>`, so faust's consumer group has this worker alone in it and sees
every control record (a broadcast), far from the engine's group on the requests topic.
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
FaustApp = faust.App  # for the modules that hand the app on without importing faust


class _WebOnlyBoot(BootStrategy):
    enable_kafka = False
    enable_kafka_consumer = False
    enable_kafka_producer = False
    enable_sensors = False


class _ControlBoot(BootStrategy):
    enable_kafka = True  # consumer and producer: the control agent's topics only
    enable_sensors = False


class WorkerApp(faust.App):
    BootStrategy = _WebOnlyBoot


class ControlledWorkerApp(faust.App):
    BootStrategy = _ControlBoot


def _credentials(options: dict[str, Any]) -> faust.types.auth.CredentialsT | None:
    """faust's form of the SASL/TLS options every other client of the worker uses."""
    context = options.get("ssl_context")
    if options.get("sasl_mechanism"):
        return faust.SASLCredentials(username=options.get("sasl_plain_username"),
                                     password=options.get("sasl_plain_password"),
                                     ssl_context=context,
                                     mechanism=options["sasl_mechanism"])
    return faust.SSLCredentials(context) if context is not None else None


def build_app(app_id: str, bootstrap_servers: str, web_host: str, web_port: int,
              render_metrics: MetricsRenderer, health: Callable[[], dict[str, Any]],
              is_ready: Callable[[], dict[str, Any]], datadir: Path,
              kafka_options: dict[str, Any] | None = None) -> faust.App:
    """A faust app serving the worker's health and metrics endpoints on web_host:web_port;
    with `kafka_options` (the worker's client options) also faust's Kafka clients, for the
    control plane's agents.

    `datadir` is where faust keeps its state; left unset, faust creates `<app id>-data/` in
    the current directory."""
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    kind = WorkerApp if kafka_options is None else ControlledWorkerApp
    app = kind(
        app_id,
        # faust formats this path with its settings ("{conf...}"): escape literal braces.
        datadir=str(datadir).replace("{", "{{").replace("}", "}}"),
        broker=[f"kafka://{server}" for server in bootstrap_servers.split(",")],
        broker_credentials=_credentials(kafka_options or {}),
        # A per-worker group of one member: a restarted worker rejoins in seconds, not after
        # faust's default 60 s session timeout of a member that died.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        consumer_auto_offset_reset="earliest",
        topic_disable_leader=True,  # no leader election, no __assignor topic to create
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


async def serve_with_app(app: faust.App, main: Callable[[], Any]) -> None:
    """Start the app's services, run `main()` (the engine) to completion, stop the services."""
    await app.start()
    try:
        await main()
    finally:
        await app.stop()
        await asyncio.sleep(0)
