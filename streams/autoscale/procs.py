"""`streamserve worker` child processes of the local supervisor: environment, start, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from streams.config import Settings
from streams.kafka.stack.broker import free_port

# Per-process values the supervisor sets itself; the chDB path must not be shared at all
# (one process per path): each child uses <its data_dir>/chdb.
_PER_PROCESS = {"worker_id", "web_port", "data_dir", "clickhouse_chdb_path"}


def settings_env(settings: Settings) -> dict[str, str]:
    """STREAMSERVE_* variables reproducing `settings` (secrets included: children need them)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None or name in _PER_PROCESS:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[f"STREAMSERVE_{name.upper()}"] = str(value)
    return env


def worker_env(settings: Settings, worker_id: str, web_port: int,
               data_dir: Path, gpu: str | None = None) -> dict[str, str]:
    # The inherited environment passes through untouched (PATH, CUDA_VISIBLE_DEVICES, HF_*) but
    # every STREAMSERVE_* value comes from `settings`, so a child runs exactly the settings the
    # supervisor was built with, also when a test built them in code.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSERVE_")}
    # `up --gpus`: the worker sees its one GPU only (as cuda:0), so nothing it loads can land
    # on a neighbour's device.
    device = {} if gpu is None else {"CUDA_VISIBLE_DEVICES": gpu}
    # Autoscaled workers come and go for good: dynamic membership, so a scaled-down worker
    # leaves the group at once instead of holding its partitions for a session timeout.
    return {**inherited, **device, **settings_env(settings), "STREAMSERVE_WORKER_ID": worker_id,
            "STREAMSERVE_WEB_PORT": str(web_port), "STREAMSERVE_DATA_DIR": str(data_dir),
            "STREAMSERVE_STATIC_MEMBERSHIP": "false"}


@dataclass
class WorkerHandle:
    slot: int
    worker_id: str
    web_host: str
    web_port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False
    gpu: str | None = None  # its CUDA_VISIBLE_DEVICES (`up --gpus`); None: inherited

    @property
    def key(self) -> str:
        """One process incarnation (a restart in the same slot is a new key)."""
        return f"{self.worker_id}#{self.process.pid}"

    @property
    def metrics_url(self) -> str:
        return self._url("/metrics")

    @property
    def health_url(self) -> str:
        return self._url("/health")

    def _url(self, path: str) -> str:
        host = "127.0.0.1" if self.web_host in {"0.0.0.0", ""} else self.web_host
        return f"http://{host}:{self.web_port}{path}"

    @property
    def exited(self) -> bool:
        return self.process.poll() is not None

    def terminate(self) -> None:
        """SIGTERM: the worker finishes its batch, publishes, commits and leaves."""
        self.stopping = True
        if not self.exited:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if not self.exited:
            self.process.kill()
            self.process.wait()


def start_worker(settings: Settings, slot: int, gpu: str | None = None,
                 taken_ports: Collection[int] = ()) -> WorkerHandle:
    """Start `streamserve worker` in `slot`: id `<prefix>-<slot>`, a free web port that no
    other worker of the supervisor holds (a worker still loading has not bound its port yet),
    its own data dir (chDB: one path per process; spool files per worker) and, with `gpu`,
    that GPU only."""
    worker_id = f"{settings.worker_id or 'worker'}-{slot}"
    data_dir = settings.data_dir / "workers" / worker_id
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    while port in taken_ports:
        port = free_port()
    with (data_dir / "worker.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            env=worker_env(settings, worker_id, port, data_dir, gpu),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return WorkerHandle(slot, worker_id, settings.web_host, port, data_dir, process, gpu=gpu)
