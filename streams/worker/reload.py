"""Hot reload of the models served: new versions load, traffic moves, old versions drain.

Two sources feed the one path. The registry file (the bootstrap source) is polled by its
modification time; the control plane (streams/control) overrides, per model name, which
versions are served with which weights and whether the model is paused. Either way the
desired set is the file's specs with the overrides applied; new (name, version) entries load
in a thread (the event loop keeps serving), then the engine switches its routing table in one
step and lets retired versions finish their queued work before their runners are closed. A
broken file or a failed load is logged and changes nothing: the worker keeps serving what it
has. One lock orders the two sources, so a file reload never interleaves a control change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from models.registry import DEFAULT_REGISTRY, load_registry
from streams.config import Settings
from streams.control.state import ModelState
from streams.errors import StreamserveError
from streams.worker.engine import WorkerEngine
from streams.worker.models_loader import load_one, served_model, specs_to_serve
from streams.worker.served import ServedModel, ServedModels

logger = logging.getLogger(__name__)


class RegistryReloader:
    def __init__(self, settings: Settings, engine: WorkerEngine, interval_s: float) -> None:
        self._settings = settings
        self._engine = engine
        self._interval_s = interval_s
        self.path: Path = settings.model_registry or DEFAULT_REGISTRY
        self._seen = self._mtime()
        self._lock = asyncio.Lock()
        self.overrides: dict[str, ModelState] = {}  # model name -> the control plane's state
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
        async with self._lock:
            await self._apply()

    # ---- the control plane's side (streams.control.agent.ControlApplier) ----------------
    async def known(self) -> dict[str, list[str]]:
        """Every registry name with its versions: what a control record may name."""
        registry = await asyncio.to_thread(load_registry, self.path)
        return {name: registry.versions(name) for name in registry.names()}

    async def apply(self, model: str, state: ModelState) -> None:
        """Serve `model` as `state` says, from now on and across file reloads; on a failed
        load the previous state stays (and the error propagates)."""
        async with self._lock:
            previous = self.overrides.get(model)
            self.overrides[model] = state
            try:
                await self._apply()
            except BaseException:
                if previous is None:
                    self.overrides.pop(model, None)
                else:
                    self.overrides[model] = previous
                raise

    def serving(self, model: str) -> tuple[dict[str, float], bool]:
        """The routing split the engine applies to `model` now, and whether it is paused."""
        served = self._engine.served
        router = served.routers.get(model)
        return (router.split if router is not None else {}), model in served.paused

    # ---- the one path ------------------------------------------------------------------
    async def _apply(self) -> None:
        registry = await asyncio.to_thread(load_registry, self.path)
        current = {model.key: model for model in self._engine.served}
        models = []
        for spec in specs_to_serve(self._settings, registry):
            state = self.overrides.get(spec.name)
            if state is not None and spec.version not in state.versions:
                continue  # retired by the control plane
            key = (spec.name, spec.version)
            if key in current:
                runner = current[key].runner  # same version: keep the loaded model
            else:
                logger.info("reload: loading %s", spec.key)
                runner = await asyncio.to_thread(load_one, self._settings, spec)
            models.append(_controlled(served_model(spec, runner), state))
        paused = frozenset(name for name, state in self.overrides.items() if state.paused)
        await self._engine.replace_models(ServedModels.of(models, paused))
        self.reloads += 1
        logger.info("reload applied: serving %s, paused %s",
                    sorted(f"{n}:{v}" for n, v in (m.key for m in models)), sorted(paused))


def _controlled(model: ServedModel, state: ModelState | None) -> ServedModel:
    """`model` with the control plane's weight and default, when it has a say."""
    if state is None:
        return model
    weight = dict(state.weights)[model.version]
    return dataclasses.replace(model, weight=weight, default=model.version == state.default)
