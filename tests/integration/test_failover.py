"""Scale-out and failover with real worker processes on a real broker (issue: no request lost).

Each test seeds numbered requests while it injects a fault, then asserts
set(inputs) == set(results ∪ DLQ) and reports duplicates. Timings are printed, never asserted
beyond generous bounds.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from tests.integration.fault_harness import (
    WorkerProcess,
    count_log_rows,
    drain,
    hold_chdb,
    release_chdb,
    seed,
    wait_until,
    write_registry,
)
from tests.integration.pipeline_harness import pipeline_settings

SESSION_TIMEOUT_S = 10.0  # EngineOptions.session_timeout_ms


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def _spawn(workers: list[WorkerProcess], settings: object, tmp_path: Path, name: str,
           delay_s: float = 0.01) -> WorkerProcess:
    registry = write_registry(tmp_path, delay_s)
    worker = WorkerProcess(name, settings, registry, tmp_path / f"{name}.log")  # type: ignore[arg-type]
    workers.append(worker.start())
    return worker


async def _all_assigned(group: list[WorkerProcess], partitions: int) -> None:
    await wait_until(lambda: sum(len(w.partitions()) for w in group) == partitions
                     and all(w.state().get("ready") for w in group), 90, "partitions assigned")


async def test_sigkill_a_worker_three_times_loses_nothing(
        kafka: LocalCluster, workers: list[WorkerProcess], tmp_path: Path) -> None:
    settings = pipeline_settings(kafka, topic_partitions=6)
    await ensure_topics(settings, service_topics(settings))
    group = [_spawn(workers, settings, tmp_path, f"k{i}") for i in range(3)]
    await _all_assigned(group, 6)

    seeding = asyncio.create_task(seed(settings, 3000, rate_per_s=100))
    takeovers = []
    for round_ in range(3):
        await asyncio.sleep(4)
        victim = group[round_ % 3]
        owned = victim.partitions()
        survivors = [w for w in group if w is not victim]
        victim.signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        def taken_over(owned: set[int] = owned,
                       survivors: list[WorkerProcess] = survivors) -> bool:
            return owned <= set().union(*(w.partitions() for w in survivors))

        await wait_until(taken_over, SESSION_TIMEOUT_S + 30, "survivors to take over")
        takeovers.append(time.monotonic() - killed_at)
        victim.start()  # same id: static membership gives it partitions back
        await _all_assigned(group, 6)
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=120)
    print(f"\nSIGKILL x3: takeover seconds {[round(t, 1) for t in takeovers]}, "
          f"duplicates {drained.duplicates()} of {len(ids)}")
    assert set(ids) == drained.accounted()
    assert set(drained.statuses.values()) == {"ok"}
    assert all(t < SESSION_TIMEOUT_S + 30 for t in takeovers)


async def test_rolling_restart_with_sigterm_loses_and_duplicates_nothing(
        kafka: LocalCluster, workers: list[WorkerProcess], tmp_path: Path) -> None:
    settings = pipeline_settings(kafka, topic_partitions=4)
    await ensure_topics(settings, service_topics(settings))
    group = [_spawn(workers, settings, tmp_path, f"r{i}") for i in range(2)]
    await _all_assigned(group, 4)

    seeding = asyncio.create_task(seed(settings, 1500, rate_per_s=100))
    for worker in group:
        await asyncio.sleep(3)
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0
        worker.start()
        await _all_assigned(group, 4)
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=120)
    print(f"\nrolling restart: duplicates {drained.duplicates()} of {len(ids)}")
    assert set(ids) == drained.accounted()
    assert drained.duplicates() == 0


async def test_scale_from_one_to_two_workers(
        kafka: LocalCluster, workers: list[WorkerProcess], tmp_path: Path) -> None:
    settings = pipeline_settings(kafka, topic_partitions=4)
    await ensure_topics(settings, service_topics(settings))
    first = _spawn(workers, settings, tmp_path, "s0")
    await _all_assigned([first], 4)
    seeding = asyncio.create_task(seed(settings, 1200, rate_per_s=120))
    await asyncio.sleep(3)
    second = _spawn(workers, settings, tmp_path, "s1")
    await _all_assigned([first, second], 4)
    assert first.partitions() and second.partitions()  # the partitions spread
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=120)
    print(f"\nscale 1->2: duplicates {drained.duplicates()} of {len(ids)}")
    assert set(ids) == drained.accounted()


async def test_broker_sigkill_and_restart_in_a_three_node_cluster(
        kafka_cluster3: LocalCluster, workers: list[WorkerProcess], tmp_path: Path) -> None:
    settings = pipeline_settings(kafka_cluster3, topic_partitions=4,
                                 topic_replication_factor=3)
    await ensure_topics(settings, service_topics(settings))
    group = [_spawn(workers, settings, tmp_path, f"b{i}") for i in range(2)]
    await _all_assigned(group, 4)
    seeding = asyncio.create_task(seed(settings, 1500, rate_per_s=100))
    await asyncio.sleep(4)
    kafka_cluster3.kill_node(2, signal.SIGKILL)
    await asyncio.sleep(4)
    await asyncio.to_thread(kafka_cluster3.restart_node, 2)
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=180)
    print(f"\nbroker SIGKILL: duplicates {drained.duplicates()} of {len(ids)}")
    assert set(ids) == drained.accounted()


async def test_clickhouse_unavailable_then_back_logs_each_request_once(
        kafka: LocalCluster, workers: list[WorkerProcess], tmp_path: Path) -> None:
    settings = pipeline_settings(kafka, topic_partitions=2)
    await ensure_topics(settings, service_topics(settings))
    chdb_path = tmp_path / "shared-chdb"
    holder = hold_chdb(chdb_path)  # ClickHouse is "down" for the worker from the start
    try:
        worker = WorkerProcess("ch0", settings, write_registry(tmp_path, 0.005),
                               tmp_path / "ch0.log",
                               extra_env={"STREAMSERVE_CLICKHOUSE_CHDB_PATH": str(chdb_path)})
        workers.append(worker.start())
        await _all_assigned([worker], 2)
        seeding = asyncio.create_task(seed(settings, 600, rate_per_s=100))
        await wait_until(lambda: worker.metric("streamserve_sink_insert_errors_total") > 0
                         and worker.metric("streamserve_sink_spool_rows") > 0, 60,
                         "the outage to show in the sink metrics")
    finally:
        release_chdb(holder)  # ClickHouse is back mid-run
    ids = await seeding
    drained = await drain(settings, set(ids), timeout_s=60)
    assert set(ids) == drained.accounted()
    worker.signal(signal.SIGTERM)
    assert worker.wait(90) == 0  # the sink drains its buffer and spool before exit
    log = count_log_rows(chdb_path)
    print(f"\nClickHouse outage: {log['raw']} raw rows for {len(ids)} requests")
    assert set(log["per_request"]) == set(ids)
    assert set(log["per_request"].values()) == {1}  # exactly one row each (FINAL)
