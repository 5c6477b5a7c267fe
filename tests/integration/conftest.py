"""Real services for integration tests: Apache Kafka started by the project's own launcher."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.stack import LocalCluster
from streams.kafka.stack.jars import default_libs_dir

KAFKA_VERSION = "4.4.0"


def _start(directory: Path, size: int) -> LocalCluster:
    cluster = LocalCluster.create(directory, default_libs_dir(KAFKA_VERSION), KAFKA_VERSION,
                                  size=size, heap="384m")
    cluster.up(timeout_s=90)
    return cluster


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One KRaft broker shared by the session; tests use their own topics."""
    cluster = _start(tmp_path_factory.mktemp("kafka"), size=1)
    try:
        yield cluster
    finally:
        cluster.down(purge=True)


@pytest.fixture
def kafka_cluster3(tmp_path: Path) -> Iterator[LocalCluster]:
    """A fresh 3-node cluster for replication and failover tests."""
    cluster = _start(tmp_path / "kafka3", size=3)
    try:
        yield cluster
    finally:
        cluster.down(purge=True)
