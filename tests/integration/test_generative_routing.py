"""Priority, canary routing and hot registry reload on a real broker with fake models."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from pathlib import Path

from models.fake import FakeRunner, fake_spec
from streams.client.library import new_request
from streams.kafka.stack import LocalCluster
from streams.worker.reload import RegistryReloader
from streams.worker.served import ServedModel, ServedModels
from tests.integration.pipeline_harness import client_for, pipeline_settings, running_workers


def _encoder(version: str, delay_s: float = 0.0, weight: float = 0.0,
             default: bool = True) -> ServedModel:
    runner = FakeRunner(fake_spec("encoder", version=version, tasks=("embed",),
                                  fake_delay_s=delay_s, max_batch_size=2))
    return ServedModel("encoder", version, runner, default=default, weight=weight)


async def test_high_priority_overtakes_a_queue_of_low_priority(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, topic_partitions=1, max_batch_size=2, max_wait_ms=0.0)
    served = ServedModels.of([_encoder("1", delay_s=0.1)])
    async with running_workers(settings, 1, [served]), client_for(settings) as client:
        low = [await client.send(new_request("encoder", "embed", text=f"low {i}",
                                             request_id=f"low{i}", priority=0))
               for i in range(30)]
        await asyncio.sleep(0.3)  # the low-priority backlog is queued at the worker
        done_before = sum(f.done() for f in low)
        urgent = await client.send(new_request("encoder", "embed", text="urgent",
                                               request_id="urgent", priority=10))
        order: list[str] = []
        for future in asyncio.as_completed([*low, urgent]):
            order.append((await future)["request_id"])
    queued_when_sent = 30 - done_before
    assert queued_when_sent >= 10, "the backlog drained before the urgent request was sent"
    # At most the computing batch and the one being published (2 x max_batch_size) finish
    # before it; every other low-priority request queued at that moment comes after it.
    assert order.index("urgent") <= done_before + 4, (done_before, order)
    assert len(order) == 31


async def test_canary_split_of_ninety_ten_over_1000_requests(kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, max_batch_size=32)
    served = ServedModels.of([_encoder("stable", weight=9), _encoder("canary", weight=1,
                                                                     default=False)])
    async with running_workers(settings, 1, [served]), client_for(settings) as client:
        results = await client.infer_many(
            [new_request("encoder", "embed", text=f"t{i}") for i in range(1000)], timeout_s=120)
        pinned = await client.infer(new_request("encoder", "embed", text="pin",
                                                model_version="canary"))
    versions = Counter(r["model_version"] for r in results)
    sigma = math.sqrt(1000 * 0.1 * 0.9)
    assert abs(versions["canary"] - 100) <= 4 * sigma, versions
    assert versions["stable"] + versions["canary"] == 1000
    assert pinned["model_version"] == "canary"


REGISTRY = """
[[models]]
name = "encoder"
version = "{version}"
tasks = ["embed"]
kind = "fake"
max_batch_size = 8
fake_delay_s = 0.01
default = true
"""


async def test_registry_reload_switches_versions_without_losing_requests(
        kafka: LocalCluster, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY.format(version="v1"))
    settings = pipeline_settings(kafka, model_registry=registry, registry_reload_s=0.2)
    async with running_workers(settings, 1, [ServedModels.of([_encoder("v1")])]) as workers, \
            client_for(settings) as client:
        engine = workers.engines[0]
        reloader = RegistryReloader(settings, engine, settings.registry_reload_s)
        watching = asyncio.create_task(reloader.run())
        sending = asyncio.create_task(client.infer_many(
            [new_request("encoder", "embed", text=f"r{i}", request_id=f"r{i}")
             for i in range(400)], timeout_s=120))
        await asyncio.sleep(0.5)
        registry.write_text(REGISTRY.format(version="v2"))
        os.utime(registry, (1e9, 2e9))  # a new mtime even on a coarse-grained filesystem
        async with asyncio.timeout(30):
            while reloader.reloads == 0:
                await asyncio.sleep(0.05)
        after = await client.infer_many(
            [new_request("encoder", "embed", text=f"a{i}") for i in range(50)])
        before = await sending
        watching.cancel()
        assert [m.key for m in engine.served] == [("encoder", "v2")]
        assert set(engine.lanes) == {("encoder", "v2")}
    assert {r["status"] for r in before + after} == {"ok"}
    assert len({r["request_id"] for r in before}) == 400
    assert {r["model_version"] for r in after} == {"v2"}
    assert "v1" in {r["model_version"] for r in before}  # traffic really moved mid-stream


async def test_backlog_beyond_deadlines_is_shed_early_and_never_computed(
        kafka: LocalCluster) -> None:
    settings = pipeline_settings(kafka, topic_partitions=1, max_batch_size=2, max_wait_ms=0.0)
    served = ServedModels.of([_encoder("1", delay_s=0.2)])
    async with running_workers(settings, 1, [served]) as workers, \
            client_for(settings) as client:
        await client.infer(new_request("encoder", "embed", text="warm up the estimate"))
        deadline = int(time.time() * 1000) + 1500
        results = await client.infer_many(
            [new_request("encoder", "embed", text=f"d{i}", deadline_ms=deadline)
             for i in range(40)], timeout_s=60)
        computed = workers.computed() - 1
    shed = [r for r in results if r["status"] == "expired" and r["error"]
            and r["error"]["code"] == "shed"]
    ok = [r for r in results if r["status"] == "ok"]
    late = [r for r in results if r["status"] == "expired" and not r["error"]]
    assert len(shed) + len(ok) + len(late) == 40
    assert len(shed) >= 20  # ~7 batches of 2 fit in 1.5 s: the rest is refused up front
    assert all(r["completed_at"] < deadline for r in shed)  # refused early, not at the deadline
    assert computed == len(ok)  # neither shed nor expired requests reached the model
