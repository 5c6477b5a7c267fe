"""Exactly-once under faults, by Kafka's own method (its `transactions_test.py`): seed numbered
requests while a fault is injected, then a read_committed reader checks set(sent) ==
set(results ∪ DLQ) and counts duplicates. Exactly-once must show 0 lost and 0 duplicates; the
same faults run at least once too, and its duplicates are printed beside them."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaClient
from aiokafka.client import CoordinationType

from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from tests.integration.fault_harness import WorkerProcess, drain, seed, wait_until, write_registry
from tests.integration.pipeline_harness import pipeline_settings

SESSION_TIMEOUT_S = 10.0
MODES = ["exactly_once", "at_least_once"]


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        if worker.process is not None and worker.process.poll() is None:
            worker.signal(signal.SIGCONT)  # a test that failed while one was frozen
        worker.stop()


def spawn(workers: list[WorkerProcess], settings: Settings, tmp_path: Path, name: str,
          **env: str) -> WorkerProcess:
    worker = WorkerProcess(name, settings, write_registry(tmp_path, 0.01),
                           tmp_path / f"{name}.log", extra_env=dict(env))
    workers.append(worker.start())
    return worker


async def all_assigned(group: list[WorkerProcess], partitions: int) -> None:
    await wait_until(lambda: sum(len(w.partitions()) for w in group) == partitions
                     and all(w.state().get("ready") for w in group), 120, "partitions assigned")


def verdict(mode: str, fault: str, ids: list[str], drained: object) -> None:
    lost = set(ids) - drained.accounted()  # type: ignore[attr-defined]
    duplicates = drained.duplicates()  # type: ignore[attr-defined]
    print(f"\n{fault} [{mode}]: {len(ids)} requests, lost {len(lost)}, duplicates {duplicates}")
    assert not lost, sorted(lost)[:20]
    if mode == "exactly_once":
        assert duplicates == 0


@pytest.mark.parametrize("mode", MODES)
async def test_hard_bounce_sigkill_three_times(kafka: LocalCluster, workers: list[WorkerProcess],
                                               tmp_path: Path, mode: str) -> None:
    settings = pipeline_settings(kafka, topic_partitions=6, delivery=mode)
    await ensure_topics(settings, service_topics(settings))
    group = [spawn(workers, settings, tmp_path, f"k{i}") for i in range(3)]
    await all_assigned(group, 6)
    seeding = asyncio.create_task(seed(settings, 3000, rate_per_s=100))
    for round_ in range(3):
        await asyncio.sleep(4)
        victim = group[round_ % 3]
        victim.signal(signal.SIGKILL)
        victim.wait()
        victim.start()
        await all_assigned(group, 6)
    ids = await seeding
    verdict(mode, "SIGKILL x3", ids, await drain(settings, set(ids), timeout_s=180))


@pytest.mark.parametrize("mode", MODES)
async def test_a_frozen_owner_is_fenced(kafka: LocalCluster, workers: list[WorkerProcess],
                                        tmp_path: Path, mode: str) -> None:
    settings = pipeline_settings(kafka, topic_partitions=4, delivery=mode)
    await ensure_topics(settings, service_topics(settings))
    # The frozen one commits every 3 s: it always holds finished, uncommitted work.
    frozen = spawn(workers, settings, tmp_path, "z0", STREAMSERVE_COMMIT_INTERVAL_MS="3000")
    other = spawn(workers, settings, tmp_path, "z1")
    await all_assigned([frozen, other], 4)
    seeding = asyncio.create_task(seed(settings, 1500, rate_per_s=100))
    await asyncio.sleep(4)
    owned = frozen.partitions()
    frozen.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    await wait_until(lambda: owned <= other.partitions(), SESSION_TIMEOUT_S + 40,
                     "the partitions to move")
    moved_s = time.monotonic() - stopped_at
    await asyncio.sleep(2)  # the new owner commits; the zombie's open work is older
    frozen.signal(signal.SIGCONT)
    await all_assigned([frozen, other], 4)
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=180)
    fenced = frozen.metric('streamserve_transactions_total{outcome="fenced"}')
    print(f"\nfrozen owner [{mode}]: partitions moved after {moved_s:.1f}s, "
          f"fenced transactions {fenced:.0f}")
    verdict(mode, "SIGSTOP past the session timeout", ids, drained)
    if mode == "exactly_once":
        assert fenced >= 1  # its late transaction was tried, refused, and never visible


async def transaction_coordinator(settings: Settings, transactional_id: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.bootstrap()
    try:
        return int(await client.coordinator_lookup(CoordinationType.TRANSACTION,
                                                   transactional_id))
    finally:
        await client.close()


@pytest.mark.parametrize("mode", MODES)
async def test_sigkill_one_of_three_brokers(kafka_cluster3: LocalCluster,
                                            workers: list[WorkerProcess], tmp_path: Path,
                                            mode: str) -> None:
    settings = pipeline_settings(kafka_cluster3, topic_partitions=4, topic_replication_factor=3,
                                 delivery=mode)
    await ensure_topics(settings, service_topics(settings))
    group = [spawn(workers, settings, tmp_path, f"b{i}") for i in range(2)]
    await all_assigned(group, 4)
    seeding = asyncio.create_task(seed(settings, 1500, rate_per_s=100))
    await asyncio.sleep(4)
    # The transaction coordinator of partition 0's transactional id, when there is one.
    victim = 2
    if mode == "exactly_once":
        victim = await transaction_coordinator(
            settings, f"{settings.consumer_group}.{settings.requests_topic}.0")
    kafka_cluster3.kill_node(victim, signal.SIGKILL)
    await asyncio.sleep(6)
    await asyncio.to_thread(kafka_cluster3.restart_node, victim)
    ids = await seeding
    verdict(mode, f"broker {victim} SIGKILLed", ids,
            await drain(settings, set(ids), timeout_s=240))


@pytest.mark.parametrize("mode", MODES)
async def test_rolling_sigterm_restart(kafka: LocalCluster, workers: list[WorkerProcess],
                                       tmp_path: Path, mode: str) -> None:
    settings = pipeline_settings(kafka, topic_partitions=4, delivery=mode)
    await ensure_topics(settings, service_topics(settings))
    group = [spawn(workers, settings, tmp_path, f"r{i}") for i in range(3)]
    await all_assigned(group, 4)
    seeding = asyncio.create_task(seed(settings, 1500, rate_per_s=100))
    for worker in group:
        await asyncio.sleep(3)
        worker.signal(signal.SIGTERM)
        assert worker.wait(90) == 0
        worker.start()
        await all_assigned(group, 4)
    ids = await seeding
    verdict(mode, "rolling SIGTERM restart", ids, await drain(settings, set(ids), timeout_s=180))
