"""A real schema registry (Apicurio Registry, Confluent's API) started by the project's launcher.

Import the fixture into a test module (`from tests.integration.registry_harness import
schema_registry`); it is session-scoped like the Kafka broker, in-memory, and stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streams.kafka.stack.registry_server import RegistryServer

START_TIMEOUT_S = 120.0  # the first run also unpacks the registry (about 160 MB) with Maven


@contextmanager
def running_registry(directory: Path) -> Iterator[RegistryServer]:
    server = RegistryServer.create(directory, in_memory=True)
    server.start(timeout_s=START_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop(purge=True)


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with running_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server
