"""Load the registry's models for this worker, with progress shown while they load."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from models.base import ModelRunner
from models.loading import load_runner
from models.registry import ModelSpec, Registry, load_registry
from streams.config import Settings
from streams.errors import ConfigError
from streams.worker.served import ServedModel, ServedModels

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
OnLoaded = Callable[[str, float], None]


def specs_to_serve(settings: Settings, registry: Registry) -> list[ModelSpec]:
    """Every version of the names in STREAMSERVE_MODELS, or every registry entry."""
    wanted = settings.served_models
    unknown = [name for name in wanted if name not in registry.names()]
    if unknown:
        raise ConfigError(f"STREAMSERVE_MODELS names {unknown}, not in the registry "
                          f"(known: {registry.names()})")
    return [spec for spec in registry if not wanted or spec.name in wanted]


def served_model(spec: ModelSpec, runner: ModelRunner) -> ServedModel:
    return ServedModel(spec.name, spec.version, runner, spec.labels, spec.default, spec.weight,
                       spec.limits, spec.failure)


def load_one(settings: Settings, spec: ModelSpec, progress: Progress | None = None,
             on_loaded: OnLoaded | None = None) -> ModelRunner:
    started = time.monotonic()
    runner = load_runner(spec, settings.data_dir / "models", settings.torch_threads, progress)
    seconds = time.monotonic() - started
    if on_loaded is not None:
        on_loaded(spec.name, seconds)
    logger.info("loaded %s in %.1fs", spec.key, seconds)
    return runner


def load_served_models(settings: Settings, progress: Progress | None = None,
                       on_loaded: OnLoaded | None = None) -> ServedModels:
    registry = load_registry(settings.model_registry)
    return ServedModels.of(served_model(spec, load_one(settings, spec, progress, on_loaded))
                           for spec in specs_to_serve(settings, registry))
