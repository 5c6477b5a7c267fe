"""The control topic on a real broker with two real worker processes (fake runners): a route
change from 90/10 to 50/50 reaches both workers and moves the observed split; bad control
records are dead-lettered by every worker and change nothing; a worker started later catches
up before it is ready; no request is lost while the routing changes."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaProducer

from streams.client.library import new_request
from streams.control.state import ControlCommand, ModelState
from streams.kafka.stack import LocalCluster
from streams.wire.codec import control_codec
from tests.integration.control_harness import (
    CANARY_REGISTRY,
    fleet_settings,
    models_cli,
    read_answers,
    worker,
)
from tests.integration.fault_harness import WorkerProcess, send_requests, wait_until

HALF = {"1": 0.5, "2": 0.5}


def batch(prefix: str, count: int) -> list[dict[str, object]]:
    return [new_request("encoder", "embed", text=f"{prefix} {i}", request_id=f"{prefix}{i}")
            for i in range(count)]


def split_within_bounds(versions: list[str], canary_share: float) -> tuple[bool, Counter[str]]:
    """Is the count of version 2 within 4 sigma of a binomial(n, canary_share)?"""
    counts = Counter(versions)
    n = len(versions)
    sigma = math.sqrt(n * canary_share * (1 - canary_share))
    return abs(counts["2"] - n * canary_share) <= 4 * sigma, counts


def routing(w: WorkerProcess) -> dict[str, float]:
    """The worker's split of unpinned encoder requests, from its /ready (rounded: floats)."""
    return {v: round(s, 6) for v, s in w.state().get("routing", {}).get("encoder", {}).items()}


async def publish_raw(settings: object, records: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                acks="all")
    await producer.start()
    try:
        for value in records:
            await producer.send_and_wait(settings.control_topic, value,
                                         key=b"encoder")
    finally:
        await producer.stop()


async def test_route_change_bad_records_and_a_late_worker(kafka: LocalCluster,
                                                          tmp_path: Path) -> None:
    settings = await fleet_settings(kafka)
    registry = tmp_path / "registry.toml"
    registry.write_text(CANARY_REGISTRY)
    workers = [worker(f"w{i}-{uuid.uuid4().hex[:4]}", settings, registry, tmp_path)
               for i in range(3)]
    try:
        for w in workers[:2]:
            w.start()
        await wait_until(lambda: all(w.state().get("ready") for w in workers[:2])
                         and sum(len(w.partitions()) for w in workers[:2]) == 4, 240, "two")
        assert all(routing(w) == {"1": 0.9, "2": 0.1} for w in workers[:2])

        # 90/10 from the registry file: 1,000 requests.
        before = batch("a", 1000)
        await send_requests(settings, before)
        answered = await read_answers(settings, {r["request_id"] for r in before}, 180)
        ok, counts = split_within_bounds([answered.versions[r["request_id"]] for r in before],
                                         0.1)
        assert ok, counts

        # 50/50 through the CLI while requests keep flowing.
        during = batch("b", 400)
        sending = asyncio.create_task(send_requests(settings, during))
        status, output = await models_cli(settings, registry, "route", "encoder", "1=50",
                                          "2=50", "--workers", "2", "--timeout", "60")
        await sending
        print(f"\n{output}")
        assert status == 0, output
        assert output.count(": applied;") == 2, output
        assert all(routing(w) == HALF for w in workers[:2])
        after = batch("c", 1000)
        await send_requests(settings, after)
        answered = await read_answers(settings, {r["request_id"] for r in before + during
                                                 + after}, 180)
        ok, counts = split_within_bounds([answered.versions[r["request_id"]] for r in after],
                                         0.5)
        earlier = Counter(answered.versions[r["request_id"]] for r in before)
        print(f"observed split: before {earlier}, after {counts}")
        assert ok, counts
        lost = {r["request_id"] for r in before + during + after} - set(answered.statuses)
        assert not lost and set(answered.statuses.values()) == {"ok"}, sorted(lost)[:10]

        # Bad records: undecodable, an unknown version, weights summing to 0.
        codec = control_codec()
        unknown = ControlCommand("bad-1", "encoder", "route", ModelState.of({"9": 1.0}), 0)
        zero = ControlCommand("bad-2", "encoder", "route", ModelState.of({"1": 0.0}), 0)
        await publish_raw(settings, [b"\x00\x00\x00\x00\x05not avro",
                                     codec.encode(unknown.record()), codec.encode(zero.record())])
        answered = await read_answers(settings, set(), 120, letters=6)
        codes = Counter(letter["code"] for letter in answered.control_letters)
        assert codes == {"undecodable": 2, "unknown_version": 2, "bad_weights": 2}, codes
        assert all(routing(w) == HALF and w.state().get("ready") for w in workers[:2])

        # A worker started now reads the whole topic before it is ready.
        workers[2].start()
        await wait_until(lambda: workers[2].state().get("ready"), 240, "the late worker")
        assert routing(workers[2]) == HALF
        # It replayed the topic from the start: the route applied, the three bad ones refused.
        assert "(1 applied, 3 refused)" in workers[2].log.read_text(), workers[2].log
        status, listing = await models_cli(settings, registry, "list")
        print(listing)
        assert status == 0 and listing.count("serving 1=0.50 2=0.50") == 3, listing
        assert "encoder: route -> 1=50 2=50" in listing, listing  # bad records are not state

        # Pause refuses (rejected + dead letter), resume serves; retire and load move versions.
        assert (await models_cli(settings, registry, "pause", "encoder", "--workers", "3"))[0] == 0
        paused = batch("p", 20)
        await send_requests(settings, paused)
        answered = await read_answers(settings, {r["request_id"] for r in paused}, 120)
        assert {answered.statuses[r["request_id"]] for r in paused} == {"rejected"}
        assert (await models_cli(settings, registry, "resume", "encoder", "--workers", "3"))[0] == 0
        status, output = await models_cli(settings, registry, "retire", "encoder", "1",
                                          "--workers", "3")
        assert status == 0 and output.count("serving 2=1.00") == 3, output
        assert all(routing(w) == {"2": 1.0} and "encoder:1" not in w.state()["models"]
                   for w in workers)
        status, output = await models_cli(settings, registry, "load", "encoder", "1",
                                          "--workers", "3")
        assert status == 0 and all("encoder:1" in w.state()["models"] for w in workers), output
        last = batch("d", 200)
        await send_requests(settings, last)
        answered = await read_answers(settings, {r["request_id"] for r in last}, 120)
        assert {answered.versions[r["request_id"]] for r in last} == {"2"}  # 1 is at weight 0

        # A worker that stops gracefully withdraws its reports.
        workers[2].stop()
        status, listing = await models_cli(settings, registry, "list")
        assert workers[2].name not in listing and workers[0].name in listing, listing
    finally:
        for w in workers:
            w.stop()
