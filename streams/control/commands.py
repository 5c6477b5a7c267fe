"""`streamserve models list | load | retire | route | pause | resume`: read the fleet's state,
write one command, print what every worker reports back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from models.registry import load_registry
from streams.clock import epoch_ms
from streams.config import Settings
from streams.control.fleet import Snapshot, answers, publish, snapshot
from streams.control.state import ControlCommand, ModelState, bootstrap_state, check, edit
from streams.errors import ConfigError


def parse_weights(words: list[str]) -> dict[str, float]:
    """['1=90', '2=10'] -> {'1': 90.0, '2': 10.0}."""
    weights = {}
    for word in words:
        version, sep, weight = word.partition("=")
        if not sep or not version:
            raise ConfigError(f"{word!r}: write VERSION=WEIGHT, e.g. 2=10")
        try:
            weights[version] = float(weight)
        except ValueError:
            raise ConfigError(f"{word!r}: the weight must be a number") from None
    return weights


def _shares(versions: list[dict[str, Any]]) -> str:
    return " ".join(f"{v['version']}={v['share']:.2f}" for v in versions) or "-"


def _weights(state: ModelState) -> str:
    return " ".join(f"{v}={w:g}" for v, w in state.weights) + (" paused" if state.paused else "")


def _report_line(report: Mapping[str, Any]) -> str:
    outcome = "applied" if report["applied"] else f"REFUSED ({report['error']})"
    return (f"  {report['worker_id']}: {outcome}; serving {_shares(report['versions'])}"
            f"{' paused' if report['paused'] else ''}")


def _known(settings: Settings) -> dict[str, list[str]]:
    registry = load_registry(settings.model_registry)
    return {name: registry.versions(name) for name in registry.names()}


async def list_models(settings: Settings) -> str:
    fleet = await snapshot(settings, _known(settings))
    names = sorted(set(fleet.commands) | {r["model"] for r in fleet.reports.values()})
    if not names:
        return "no control records and no worker reports yet"
    lines = []
    for name in names:
        command = fleet.commands.get(name)
        said = (f"{command.action} -> {_weights(command.state)} ({command.command_id})"
                if command else "registry file (no control record)")
        lines.append(f"{name}: {said}")
        for key in sorted(k for k, r in fleet.reports.items() if r["model"] == name):
            report = fleet.reports[key]
            lines.append(f"  {report['worker_id']}: serving {_shares(report['versions'])}"
                         f"{' paused' if report['paused'] else ''} (last: {report['command_id']})")
    return "\n".join(lines)


def _base(settings: Settings, fleet: Snapshot, model: str) -> ModelState:
    """The model's state now: its newest control record, else what the registry file says."""
    if model in fleet.commands:
        return fleet.commands[model].state
    registry = load_registry(settings.model_registry)
    if model not in registry.names():
        raise ConfigError(f"model {model!r} is not in the registry (known: {registry.names()})")
    specs = [registry.get(model, v) for v in registry.versions(model)]
    return bootstrap_state({s.version: (s.weight, s.default) for s in specs})


async def run_command(settings: Settings, action: str, model: str, words: list[str],
                      timeout_s: float, expected_workers: int | None) -> tuple[int, str]:
    """(exit status, text): 0 when every worker that answered applied the command and as many
    answered as expected (given, or every worker reporting on the model)."""
    known = _known(settings)
    fleet = await snapshot(settings, known)
    versions = parse_weights(words) if action == "route" else dict.fromkeys(words, 0.0)
    state = edit(_base(settings, fleet, model), action, versions)
    command = ControlCommand(f"{action}-{uuid.uuid4().hex[:12]}", model, action, state,
                             int(epoch_ms()))
    # The workers check too (and dead-letter what fails); checking here first means an
    # operator's typo is one line, not a dead letter per worker.
    check(command, model.encode(), known)
    expected = fleet.reporting(model)
    started = time.monotonic()
    offset = await publish(settings, command)
    got = await answers(settings, command.command_id, expected, expected_workers,
                        fleet.status_ends, timeout_s)
    lines = [f"{action} {model} -> {_weights(state)}: command {command.command_id} at offset "
             f"{offset}; {len(got)} worker(s) answered in {time.monotonic() - started:.1f}s"]
    lines += [_report_line(got[worker]) for worker in sorted(got)]
    missing = sorted(expected - set(got))
    if missing:
        lines.append(f"  no answer from {missing} within {timeout_s:.0f}s (stopped? they apply "
                     "it when they start)")
    enough = len(got) >= (expected_workers if expected_workers is not None else len(expected))
    ok = enough and bool(got) and all(r["applied"] for r in got.values())
    return (0 if ok else 1), "\n".join(lines)
