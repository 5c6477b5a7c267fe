"""The local Apache Kafka stack behind `streamserve stack up|down|status` and test fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.config import Settings
from streams.errors import ConfigError, StackError
from streams.kafka.stack.cluster import LocalCluster
from streams.kafka.stack.jars import default_libs_dir
from streams.kafka.stack.security import SCRAM_MECHANISM, ScramUser, StackSecurity

__all__ = ["LocalCluster", "StackSecurity", "libs_dir_for", "open_stack", "stack_dir",
           "stack_security"]


def stack_dir(settings: Settings) -> Path:
    return settings.data_dir / "kafka"


def libs_dir_for(settings: Settings) -> Path:
    return settings.kafka_libs_dir or default_libs_dir(settings.kafka_version)


def stack_security(settings: Settings) -> StackSecurity:
    """SCRAM admin of a secured local stack: the very login the other commands will use."""
    password = settings.kafka_sasl_password
    if (settings.kafka_security_protocol != "SASL_PLAINTEXT"
            or settings.kafka_sasl_mechanism != SCRAM_MECHANISM
            or not settings.kafka_sasl_username or password is None):
        raise ConfigError(
            "a secured local stack needs STREAMSERVE_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT, "
            f"STREAMSERVE_KAFKA_SASL_MECHANISM={SCRAM_MECHANISM}, "
            "STREAMSERVE_KAFKA_SASL_USERNAME and STREAMSERVE_KAFKA_SASL_PASSWORD (its admin)")
    return StackSecurity(ScramUser(settings.kafka_sasl_username, password))


def open_stack(settings: Settings, size: int = 1, port: int | None = None,
               fresh: bool = False, secure: bool = False) -> LocalCluster:
    """The recorded stack under the data dir, or a new layout if there is none.

    A recorded stack keeps its data and ports (restart = same topics, same address). A data dir
    left without a state file is stale: we refuse to guess and say how to clear it. `secure`
    asks for SASL/SCRAM and the authorizer, with the configured SASL login as the admin.
    """
    security = stack_security(settings) if secure else None
    directory = stack_dir(settings)
    if fresh:
        existing = LocalCluster.load(directory)
        if existing is not None:
            existing.down(purge=True)
        shutil.rmtree(directory, ignore_errors=True)
    cluster = LocalCluster.load(directory)
    if cluster is not None:
        if len(cluster.nodes) != size:
            raise StackError(f"the stack in {directory} has {len(cluster.nodes)} node(s), not "
                             f"{size}; run `streamserve stack down --purge` first")
        if (cluster.security is not None) != secure:
            recorded = "secured (SASL)" if cluster.security is not None else "PLAINTEXT"
            raise StackError(f"the stack in {directory} is {recorded}; run `streamserve stack "
                             "down --purge` first (or pass --fresh) to change that")
        return cluster
    if directory.exists() and any(directory.iterdir()):
        raise StackError(f"{directory} holds Kafka data but no {directory / 'stack.json'}; it is "
                         "stale from an earlier run: remove it or pass --fresh")
    return LocalCluster.create(directory, libs_dir_for(settings), settings.kafka_version,
                               size=size, heap=settings.kafka_heap, broker_port=port,
                               security=security)
