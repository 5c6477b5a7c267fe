"""The models this worker serves, looked up by name and optional version."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from models.base import ModelRunner
from streams.requests import ModelLimits, unknown_model


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    runner: ModelRunner
    labels: tuple[str, ...] = ()
    default: bool = True

    @property
    def limits(self) -> ModelLimits:
        return ModelLimits.of(self.runner, self.labels)


@dataclass
class ServedModels:
    """Every (name, version) served; a request without a version gets the default one."""

    by_version: dict[tuple[str, str], ServedModel] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, models: Iterable[ServedModel]) -> ServedModels:
        served = cls()
        for model in models:
            served.by_version[(model.name, model.version)] = model
            if model.default or model.name not in served.defaults:
                served.defaults[model.name] = model.version
        return served

    def resolve(self, name: str, version: str | None) -> ServedModel:
        """The model a request names; `InvalidRequest(unknown_model)` when not served."""
        chosen = version if version is not None else self.defaults.get(name)
        model = self.by_version.get((name, chosen)) if chosen is not None else None
        if model is None:
            raise unknown_model(name, version)
        return model

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.by_version.values())
