"""What a control record says, whether a worker may apply it, and how the CLI edits one: pure.

Compaction keeps only the newest record per model, so a record is never a delta: it carries
the model's whole desired state (versions with weights, paused). The CLI reads the newest
record, edits it (`edit`) and writes the result; a worker checks it (`check`) against its own
registry and applies the state as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.errors import StreamserveError

ACTIONS = ("load", "retire", "route", "pause", "resume")


class ControlRejected(StreamserveError):
    """A control record no worker may apply: it is dead-lettered and changes nothing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelState:
    """The versions a model is served at, each with its routing weight, and whether paused."""

    weights: tuple[tuple[str, float], ...]  # (version, weight), sorted by version
    paused: bool = False

    @classmethod
    def of(cls, weights: Mapping[str, float], paused: bool = False) -> ModelState:
        return cls(tuple(sorted((str(v), float(w)) for v, w in weights.items())), paused)

    @property
    def versions(self) -> list[str]:
        return [version for version, _ in self.weights]

    @property
    def default(self) -> str:
        """The version that takes requests when no weight is positive: the heaviest (ties: the
        first by version, since `weights` is sorted and max keeps the first maximum)."""
        return max(self.weights, key=lambda vw: vw[1])[0]


@dataclass(frozen=True)
class ControlCommand:
    command_id: str
    model: str
    action: str
    state: ModelState
    issued_at: int

    def record(self) -> dict[str, Any]:
        """The Avro record (schemas/model_control.v1.avsc)."""
        return {"command_id": self.command_id, "model": self.model, "action": self.action,
                "versions": [{"version": v, "weight": w} for v, w in self.state.weights],
                "paused": self.state.paused, "issued_at": self.issued_at}

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> ControlCommand:
        versions = record["versions"]
        return cls(str(record["command_id"]), str(record["model"]), str(record["action"]),
                   ModelState(tuple((str(v["version"]), float(v["weight"])) for v in versions),
                              bool(record["paused"])), int(record["issued_at"]))


def check(command: ControlCommand, key: bytes | None,
          known: Mapping[str, Sequence[str]]) -> None:
    """Raise ControlRejected unless a worker whose registry holds `known` (name -> versions)
    may apply `command`."""
    if key is not None and key.decode(errors="replace") != command.model:
        raise ControlRejected("bad_key", f"record key {key!r} is not its model "
                              f"{command.model!r} (compaction keys by model)")
    if command.model not in known:
        raise ControlRejected("unknown_model", f"model {command.model!r} is not in the registry "
                              f"(known: {sorted(known)})")
    versions = command.state.versions
    if not versions:
        raise ControlRejected("no_versions", f"{command.model}: a state must serve a version")
    if len(set(versions)) != len(versions):
        raise ControlRejected("bad_versions", f"{command.model}: versions repeat: {versions}")
    unknown = sorted(set(versions) - set(known[command.model]))
    if unknown:
        raise ControlRejected("unknown_version", f"{command.model}: versions {unknown} are not in "
                              f"the registry (known: {sorted(known[command.model])})")
    weights = [w for _, w in command.state.weights]
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ControlRejected("bad_weights", f"{command.model}: weights {weights} must be "
                              "finite, not negative, and sum to more than 0")


def edit(base: ModelState, action: str, versions: Mapping[str, float]) -> ModelState:
    """`base` after the CLI's `action`: load adds versions at weight 0, retire removes them,
    route sets the weights it names (the other versions stay loaded at 0), pause/resume."""
    weights = dict(base.weights)
    if action == "load":
        for version in versions:
            weights.setdefault(version, 0.0)
    elif action == "retire":
        for version in versions:
            weights.pop(version, None)
        if weights and sum(weights.values()) <= 0:
            raise ControlRejected("bad_weights", f"retiring {sorted(versions)} leaves no version "
                                  "with a weight: route to another version first")
    elif action == "route":
        weights = {version: 0.0 for version in weights} | dict(versions)
    elif action not in ("pause", "resume"):
        raise ControlRejected("bad_action", f"unknown action {action!r} (one of {ACTIONS})")
    paused = {"pause": True, "resume": False}.get(action, base.paused)
    return ModelState.of(weights, paused)


def bootstrap_state(versions: Mapping[str, tuple[float, bool]]) -> ModelState:
    """A model's state as the registry file describes it ((weight, default) per version):
    when no weight is positive the default version takes everything, so it gets weight 1."""
    weights = {v: w for v, (w, _) in versions.items()}
    if sum(weights.values()) <= 0:
        default = next((v for v, (_, d) in versions.items() if d), min(versions))
        weights[default] = 1.0
    return ModelState.of(weights)
