"""The models this worker serves, looked up by name and optional version (canary-aware)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from models.base import ModelRunner
from models.limits import FailurePolicy, RequestLimits
from streams.errors import InvalidRequest
from streams.policy.routing import VersionRouter
from streams.protocol.requests import ModelLimits, unknown_model


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    runner: ModelRunner
    labels: tuple[str, ...] = ()
    default: bool = True
    weight: float = 0.0  # canary share of unpinned requests (see streams/policy/routing.py)
    caps: RequestLimits = field(default_factory=RequestLimits)  # cheap caps, from the registry
    failure: FailurePolicy = field(default_factory=FailurePolicy)  # timeout, retries, breaker

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.version)

    @property
    def limits(self) -> ModelLimits:
        return ModelLimits.of(self.runner, self.labels, self.caps)


@dataclass
class ServedModels:
    """Every (name, version) served; a request without a version is routed by `VersionRouter`."""

    by_version: dict[tuple[str, str], ServedModel] = field(default_factory=dict)
    routers: dict[str, VersionRouter] = field(default_factory=dict)
    # Names paused by the control plane: their requests are refused (a rejected result and a
    # dead letter, replayable once resumed), their lanes stay loaded.
    paused: frozenset[str] = frozenset()

    @classmethod
    def of(cls, models: Iterable[ServedModel], paused: frozenset[str] = frozenset()
           ) -> ServedModels:
        served = cls(paused=paused)
        defaults: dict[str, str] = {}
        for model in models:
            served.by_version[model.key] = model
            if model.default or model.name not in defaults:
                defaults[model.name] = model.version
        for name, default in defaults.items():
            weights = {m.version: m.weight for m in served.by_version.values() if m.name == name}
            served.routers[name] = VersionRouter(default, weights)
        return served

    def resolve(self, name: str, version: str | None, request_id: str = "") -> ServedModel:
        """The model a request names; `InvalidRequest(unknown_model)` when not served,
        `InvalidRequest(model_paused)` while paused."""
        if name in self.paused:
            raise InvalidRequest("model_paused", f"model {name!r} is paused by the control "
                                 "plane; its dead letters can be replayed once resumed")
        router = self.routers.get(name)
        chosen = version if version is not None else (router.pick(request_id) if router else None)
        model = self.by_version.get((name, chosen)) if chosen is not None else None
        if model is None:
            raise unknown_model(name, version)
        return model

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.by_version.values())

    def names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.by_version)

    def max_request_bytes(self) -> int:
        """The largest request any served model takes (checked before decoding)."""
        return max((m.caps.max_request_bytes for m in self), default=0)

    def longest_batch_s(self) -> float:
        """The longest a batch of any served model may run (its batch timeout)."""
        return max((m.failure.batch_timeout_s for m in self), default=0.0)
