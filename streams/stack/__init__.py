"""The local Apache Kafka stack behind `streamserve stack up|down|status` and test fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

from streams.config import Settings
from streams.errors import StackError
from streams.stack.cluster import LocalCluster
from streams.stack.jars import default_libs_dir

__all__ = ["LocalCluster", "libs_dir_for", "open_stack", "stack_dir"]


def stack_dir(settings: Settings) -> Path:
    return settings.data_dir / "kafka"


def libs_dir_for(settings: Settings) -> Path:
    return settings.kafka_libs_dir or default_libs_dir(settings.kafka_version)


def open_stack(settings: Settings, size: int = 1, port: int | None = None,
               fresh: bool = False) -> LocalCluster:
    """The recorded stack under the data dir, or a new layout if there is none.

    A recorded stack keeps its data and ports (restart = same topics, same address). A data dir
    left without a state file is stale: we refuse to guess and say how to clear it.
    """
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
        return cluster
    if directory.exists() and any(directory.iterdir()):
        raise StackError(f"{directory} holds Kafka data but no {directory / 'stack.json'}; it is "
                         "stale from an earlier run: remove it or pass --fresh")
    return LocalCluster.create(directory, libs_dir_for(settings), settings.kafka_version,
                               size=size, heap=settings.kafka_heap, broker_port=port)
