"""The worker's end of the control plane: topics, end offsets, the agent on the faust app.

The engine starts only once the agent has read the control topic up to the end offsets
captured here, so a worker never serves a request with routing the fleet has moved past;
`/ready` says `control_caught_up` until then.
"""

from __future__ import annotations

import asyncio

from streams.config import Settings
from streams.control.agent import ControlAgent, end_offsets
from streams.kafka.topics import control_topics, ensure_topics
from streams.worker.app import FaustApp
from streams.worker.engine import WorkerEngine
from streams.worker.metrics import WorkerMetrics
from streams.worker.reload import RegistryReloader

CAUGHT_UP = "control_caught_up"


async def attach_control(app: FaustApp, settings: Settings, engine: WorkerEngine,
                         reloader: RegistryReloader, metrics: WorkerMetrics) -> ControlAgent:
    await ensure_topics(settings, control_topics(settings))
    ends = await end_offsets(settings, settings.control_topic)
    return ControlAgent(app, settings, engine.options.worker_id, reloader, ends,
                        on_caught_up=lambda: metrics.set_ready(CAUGHT_UP, True),
                        models=lambda: sorted(engine.served.names()))


async def wait_caught_up(agent: ControlAgent, stopping: asyncio.Event) -> bool:
    """True once the agent caught up; False when the worker is told to stop first."""
    caught_up = asyncio.ensure_future(agent.wait_caught_up())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([caught_up, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (caught_up, stopped):
            task.cancel()
    return agent.caught_up
