"""Hot reload of the model registry: new versions load, traffic moves, old versions drain.

Polls the registry file's modification time. A changed file is parsed and its new
(name, version) entries are loaded in a thread (the event loop keeps serving); then the engine
switches its routing table in one step and lets retired versions finish their queued work
before their runners are closed. A broken file is logged and ignored: the worker keeps
serving what it has.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from models.registry import DEFAULT_REGISTRY, load_registry
from streams.config import Settings
from streams.errors import StreamserveError
from streams.worker.engine import WorkerEngine
from streams.worker.models_loader import load_one, served_model, specs_to_serve
from streams.worker.served import ServedModels

logger = logging.getLogger(__name__)


class RegistryReloader:
    def __init__(self, settings: Settings, engine: WorkerEngine, interval_s: float) -> None:
        self._settings = settings
        self._engine = engine
        self._interval_s = interval_s
        self.path: Path = settings.model_registry or DEFAULT_REGISTRY
        self._seen = self._mtime()
        self.reloads = 0

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            mtime = self._mtime()
            if mtime is None or mtime == self._seen:
                continue
            self._seen = mtime
            try:
                await self.reload()
            except StreamserveError as exc:  # includes registry and model-load errors
                logger.error("registry %s not applied, still serving the previous models: %s",
                             self.path, exc)

    async def reload(self) -> None:
        registry = await asyncio.to_thread(load_registry, self.path)
        current = {model.key: model for model in self._engine.served}
        models = []
        for spec in specs_to_serve(self._settings, registry):
            key = (spec.name, spec.version)
            if key in current:
                runner = current[key].runner  # same version: keep the loaded model
            else:
                logger.info("registry reload: loading %s", spec.key)
                runner = await asyncio.to_thread(load_one, self._settings, spec)
            models.append(served_model(spec, runner))
        await self._engine.replace_models(ServedModels.of(models))
        self.reloads += 1
        logger.info("registry reload applied: serving %s",
                    sorted(f"{n}:{v}" for n, v in (m.key for m in models)))
