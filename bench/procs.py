"""Contender processes: spawn, wait until loaded and warm, start together, stop by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.contenders.config import ContenderConfig
from bench.kafka_io import Topics
from bench.runners import DEFAULT_CACHE, ROOT
from streams.kafka.stack.broker import free_port


class ContenderError(RuntimeError):
    pass


def config_for(kind: str, model: str, topics: Topics, workdir: Path, name: str,
               **extra: Any) -> ContenderConfig:
    return ContenderConfig(
        kind=kind, model=model, bootstrap=topics.bootstrap, requests_topic=topics.requests,
        results_topic=topics.results, dlq_topic=topics.dlq, tokens_topic=topics.tokens,
        group=topics.group, worker_id=name, ready_file=str(workdir / f"{name}.ready"),
        go_file=str(workdir / f"{topics.group}.go"), cache_dir=str(DEFAULT_CACHE),
        web_port=free_port(), **extra)


class Proc:
    def __init__(self, config: ContenderConfig, workdir: Path, python: Path | None = None):
        self.config = config
        self.log_path = workdir / f"{config.worker_id}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [str(python or sys.executable), "-m", f"bench.contenders.{config.kind}",
                 config.to_json()], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)  # Ctrl-C in the terminal reaches us, we stop them

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        ready = Path(self.config.ready_file)
        while not ready.exists():
            if not self.alive:
                raise ContenderError(f"{self.config.worker_id} exited with "
                                     f"{self.popen.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise ContenderError(f"{self.config.worker_id} not ready after {timeout_s:.0f}s:"
                                     f"\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@contextlib.contextmanager
def started(configs: Sequence[ContenderConfig], workdir: Path, python: Path | None = None,
            ready_timeout_s: float = 240.0) -> Iterator[list[Proc]]:
    """Spawn every contender, wait until all are loaded and warm, say go, stop them at the end
    (also on errors and Ctrl-C)."""
    procs: list[Proc] = []
    try:
        for config in configs:
            procs.append(Proc(config, workdir, python))
        for proc in procs:
            proc.wait_ready(ready_timeout_s)
        for go in {config.go_file for config in configs}:
            Path(go).write_text("go")
        yield procs
    finally:
        for proc in procs:
            if proc.alive:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.stop()


def any_alive(procs: Sequence[Proc]) -> bool:
    return any(proc.alive for proc in procs)


def wait_http_ready(port: int, timeout_s: float = 60.0) -> None:
    """Until the worker's /ready says yes (models loaded, partitions assigned)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise ContenderError(f"worker on port {port} not ready after {timeout_s:.0f}s")
