"""A new user's first session, with real processes against a fresh broker (fake models).

A fresh broker matters: its first consumer-group join is the one that used to log
GroupCoordinatorNotAvailableError. Everything runs as `python -m streams.cli ...` from a
scratch current directory, so what the worker writes outside its data dir shows up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.stack import LocalCluster
from streams.kafka.stack.broker import free_port
from streams.kafka.stack.jars import default_libs_dir
from tests.integration.conftest import KAFKA_VERSION

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed", "classify"]
kind = "fake"
default = true

[[models]]
name = "echo"
version = "1"
tasks = ["generate"]
kind = "fake"
max_new_tokens = 16
default = true
"""


@pytest.fixture(scope="module")
def fresh_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Not the session's broker: other tests made its first group join long ago."""
    cluster = LocalCluster.create(tmp_path_factory.mktemp("fresh-kafka"),
                                  default_libs_dir(KAFKA_VERSION), KAFKA_VERSION, size=1,
                                  heap="384m")
    cluster.up(timeout_s=90)
    try:
        yield cluster
    finally:
        cluster.down(purge=True)


class Session:
    """Environment and helpers for one user's shell: one data dir, one scratch cwd."""

    def __init__(self, tmp_path: Path, bootstrap: str) -> None:
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir()
        self.data_dir = tmp_path / "data"
        registry = tmp_path / "registry.toml"
        registry.write_text(REGISTRY)
        self.env = {**os.environ, "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "STREAMSERVE_DATA_DIR": str(self.data_dir),
                    "STREAMSERVE_MODEL_REGISTRY": str(registry),
                    "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}

    def run(self, *argv: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streams.cli", *argv], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=timeout_s)

    def worker(self, worker_id: str, port: int, log: Path) -> subprocess.Popen[bytes]:
        env = {**self.env, "STREAMSERVE_WORKER_ID": worker_id, "STREAMSERVE_WEB_PORT": str(port)}
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                    cwd=self.cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(port: int, worker: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as answer:
                if json.loads(answer.read()).get("ready"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"worker not ready within 90s:\n{log.read_text()}")


def test_first_session_on_a_fresh_broker(fresh_kafka: LocalCluster, tmp_path: Path) -> None:
    user = Session(tmp_path, fresh_kafka.bootstrap_servers)

    too_many = user.run("topics", "create", "--replication-factor", "3")
    assert too_many.returncode == 1
    assert too_many.stderr.strip() == ("streamserve: replication factor 3 needs 3 brokers, the "
                                       "cluster has 1 (`streamserve stack up --nodes 3` starts "
                                       "three)")
    created = user.run("topics", "create")
    assert created.returncode == 0, created.stderr
    assert "inference.requests: 4 partitions, replication factor 1" in created.stdout

    port, log = free_port(), tmp_path / "worker-a.log"
    first = user.worker("worker-a", port, log)
    try:
        _wait_ready(port, first, log)

        # A second worker in the same directory stops at once, saying why.
        second_log = tmp_path / "worker-b.log"
        started = time.monotonic()
        second = user.worker("worker-b", free_port(), second_log)
        assert second.wait(timeout=60) == 1
        refusal = second_log.read_text().strip()
        assert time.monotonic() - started < 30
        assert refusal.startswith(f"streamserve: the request log's chDB path "
                                  f"{user.data_dir / 'chdb'} belongs to worker worker-a (pid ")
        assert "\n" not in refusal and "loaded" not in refusal

        sent = user.run("send", "hello there", "--timeout", "30")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.startswith("hello there\n")  # the fake generator echoes
        assert "worker-a" in sent.stdout

        replayed = user.run("tail", "--from-beginning", "--limit", "1", timeout_s=30)
        assert replayed.returncode == 0, replayed.stderr
        assert "echo: hello there" in replayed.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
    output = log.read_text()
    for noise in ("ERROR", "Traceback", "GroupCoordinatorNotAvailable",
                  "Marking the coordinator dead", "Unclosed"):
        assert noise not in output, output
    # faust's state went under the data dir, nothing into the current directory.
    assert list(user.cwd.iterdir()) == []
    assert (user.data_dir / "faust" / "worker-a").is_dir()
