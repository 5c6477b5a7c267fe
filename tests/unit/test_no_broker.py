"""No broker running: each command that needs Kafka says so in one line and exits non-zero.

Real processes (`python -m streams.cli ...`) against a closed loopback port: what a new user sees
when they skip `streamserve stack up`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.kafka.stack.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
FAKE_REGISTRY = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed"]
kind = "fake"
default = true
"""


def _run(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    registry = tmp_path / "registry.toml"
    registry.write_text(FAKE_REGISTRY)
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "STREAMSERVE_DATA_DIR": str(tmp_path / "data"),
           "STREAMSERVE_MODEL_REGISTRY": str(registry), "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "streams.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr, bootstrap


@pytest.mark.parametrize("argv", [
    ("send", "What is the capital of France?"),
    ("tail",),
    ("topics", "describe"),
    ("topics", "create"),
    ("worker",),
])
def test_a_missing_broker_is_one_line_with_the_address_and_the_fix(
        tmp_path: Path, argv: tuple[str, ...]) -> None:
    code, output, bootstrap = _run(tmp_path, *argv)
    assert code != 0
    lines = output.strip().splitlines()
    assert len(lines) == 1, output  # no traceback, no aiokafka log line, no "Unclosed ..."
    assert lines[0].startswith(f"streamserve: no Kafka broker answers at {bootstrap}")
    assert "streamserve stack up" in lines[0]
    assert "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS" in lines[0]


def test_the_worker_checks_kafka_before_it_loads_models(tmp_path: Path) -> None:
    code, output, _ = _run(tmp_path, "worker")
    assert code == 1
    assert "loaded" not in output and "OpenMP" not in output
    assert not (tmp_path / "data" / "chdb.owner").exists()  # nothing claimed either
