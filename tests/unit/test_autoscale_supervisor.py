"""The local supervisor's bookkeeping with fake processes: slots, retiring, crash restarts."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from streams.autoscale import supervisor as supervisor_module
from streams.autoscale.procs import WorkerHandle
from streams.autoscale.supervisor import Supervisor
from streams.autoscale.up import with_bounds
from streams.config import Settings
from streams.errors import ConfigError

_pids = itertools.count(1000)


class FakeProcess:
    def __init__(self) -> None:
        self.pid = next(_pids)
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)

    def kill(self) -> None:
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode or 0


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Supervisor:
    def fake_start(settings: Settings, slot: int, gpu: str | None = None,
                   taken_ports: Any = ()) -> WorkerHandle:
        process: Any = FakeProcess()
        return WorkerHandle(slot, f"worker-{slot}", "127.0.0.1", 7000 + slot, tmp_path,
                            process, gpu=gpu)

    monkeypatch.setattr(supervisor_module, "start_worker", fake_start)
    lines: list[str] = []
    sup = Supervisor(Settings(data_dir=tmp_path), None, say=lines.append)
    sup.lines = lines  # type: ignore[attr-defined]
    return sup


def test_scale_up_fills_low_slots_and_down_retires_high_ones(supervisor: Supervisor) -> None:
    supervisor._scale_to(3, "burst", 900)
    assert sorted(supervisor.workers) == [0, 1, 2]
    supervisor._scale_to(1, "drained", 0)
    assert sorted(supervisor.workers) == [0]
    assert sorted(w.slot for w in supervisor.retiring) == [1, 2]
    assert all(w.stopping and w.process.signals for w in supervisor.retiring)  # SIGTERM sent
    # slots 1 and 2 still drain (their group.instance.id and chDB path are taken)
    supervisor._scale_to(2, "burst again", 500)
    assert sorted(supervisor.workers) == [0, 3]
    lines = supervisor.lines  # type: ignore[attr-defined]
    assert "replicas 0 -> 3 lag 900: burst" in lines[0]
    assert [(t.replicas, t.lag) for t in supervisor.timeline] == [(3, 900), (1, 0), (2, 500)]


def test_drained_workers_are_forgotten(supervisor: Supervisor) -> None:
    supervisor._scale_to(2, "start", 0)
    supervisor._scale_to(1, "drained", 0)
    retired = supervisor.retiring[0]
    retired.process.returncode = 0  # type: ignore[attr-defined]
    supervisor._reap()
    assert supervisor.retiring == [] and sorted(supervisor.workers) == [0]


def test_a_crashed_worker_is_restarted_with_backoff(supervisor: Supervisor) -> None:
    supervisor._scale_to(1, "start", 0)
    first = supervisor.workers[0]
    first.process.returncode = 1  # type: ignore[attr-defined]
    supervisor._reap()  # noticed: restart scheduled in 2**0 - 1 = 0 s
    assert "exited with 1; restart in 0s" in supervisor.lines[-1]  # type: ignore[attr-defined]
    supervisor._reap()
    second = supervisor.workers[0]
    assert second is not first and not second.exited
    second.process.returncode = 1  # type: ignore[attr-defined]
    supervisor._reap()
    assert "restart in 1s" in supervisor.lines[-1]  # type: ignore[attr-defined]
    supervisor._reap()
    assert supervisor.workers[0] is second  # still backing off


def test_cli_bounds_are_validated() -> None:
    settings, count = with_bounds(Settings(), "auto", 2, 3)
    assert (settings.autoscale_min_replicas, settings.autoscale_max_replicas, count) == (
        2, 3, None)
    assert with_bounds(Settings(), "4", None, None)[1] == 4
    with pytest.raises(ConfigError):
        with_bounds(Settings(), "many", None, None)
    with pytest.raises(ConfigError):
        with_bounds(Settings(), "auto", 0, None)
    with pytest.raises(ConfigError):
        with_bounds(Settings(), "auto", 3, 2)
