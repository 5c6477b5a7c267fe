"""Real worker processes (`streamserve worker`, fake models) and a seeded request stream.

Fault tests seed numbered requests while they inject a fault, then drain the results and the
DLQ and compare sets: every input must be answered (ok/expired/rejected) or dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.client.library import new_request
from streams.config import Settings
from streams.kafka.stack.broker import free_port
from streams.wire.codec import request_codec, result_codec

FAKE_REGISTRY = """
[[models]]
name = "encoder"
version = "1"
tasks = ["embed", "classify"]
kind = "fake"
max_batch_size = 16
max_input_tokens = 64
fake_delay_s = {delay}
default = true
"""

ROOT = Path(__file__).resolve().parents[2]


def write_registry(directory: Path, delay_s: float) -> Path:
    path = directory / "registry.toml"
    path.write_text(FAKE_REGISTRY.format(delay=delay_s))
    return path


@dataclass
class WorkerProcess:
    name: str
    settings: Settings
    registry: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    web_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> WorkerProcess:
        env = {**os.environ,
               "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
               "STREAMSERVE_REQUESTS_TOPIC": self.settings.requests_topic,
               "STREAMSERVE_RESULTS_TOPIC": self.settings.results_topic,
               "STREAMSERVE_DLQ_TOPIC": self.settings.dlq_topic,
               "STREAMSERVE_TOKENS_TOPIC": self.settings.tokens_topic,
               "STREAMSERVE_CONTROL_TOPIC": self.settings.control_topic,
               "STREAMSERVE_CONTROL_STATUS_TOPIC": self.settings.control_status_topic,
               "STREAMSERVE_CONSUMER_GROUP": self.settings.consumer_group,
               "STREAMSERVE_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
               "STREAMSERVE_TOPIC_REPLICATION_FACTOR":
                   str(self.settings.topic_replication_factor),
               "STREAMSERVE_MODEL_REGISTRY": str(self.registry),
               "STREAMSERVE_MAX_WAIT_MS": str(self.settings.max_wait_ms),
               "STREAMSERVE_WORKER_ID": self.name,
               "STREAMSERVE_WEB_PORT": str(self.web_port),
               "STREAMSERVE_DATA_DIR": str(self.log.parent / f"data-{self.name}"),
               "STREAMSERVE_DELIVERY": self.settings.delivery,
               "STREAMSERVE_COMMIT_INTERVAL_MS": str(self.settings.commit_interval_ms),
               **self.extra_env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                            env=env, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT)
        return self

    def state(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/ready",
                                        timeout=1) as response:
                return dict(json.loads(response.read()))
        except OSError:
            return {"ready": False, "partitions": []}

    def metric(self, name: str) -> float:
        """Sum of a metric's samples from the worker's /metrics (0 when absent)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics",
                                        timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))

    def partitions(self) -> set[int]:
        return set(self.state().get("partitions", []))

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout_s: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it hangs (tests never leave a worker behind)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def wait_until(predicate: Any, timeout_s: float, what: str) -> float:
    """Poll `predicate()` until true; returns the seconds it took."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def send_requests(settings: Settings, requests: list[dict[str, Any]]) -> None:
    """Publish `requests` (key = request id) to the requests topic, acknowledged."""
    codec = request_codec()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for request in requests:
            await producer.send(settings.requests_topic, codec.encode(request),
                                key=request["request_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def seed(settings: Settings, count: int, rate_per_s: float,
               prefix: str = "n") -> list[str]:
    """Publish `count` numbered embed requests at about `rate_per_s`; returns their ids."""
    codec = request_codec()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True)
    await producer.start()
    ids = []
    started = time.monotonic()
    try:
        for i in range(count):
            request_id = f"{prefix}{i}"
            ids.append(request_id)
            await producer.send(settings.requests_topic, codec.encode(
                new_request("encoder", "embed", text=f"item {i}", request_id=request_id)),
                key=request_id.encode())
            lag = started + (i + 1) / rate_per_s - time.monotonic()
            if lag > 0:
                await asyncio.sleep(lag)
        await producer.flush()
    finally:
        await producer.stop()
    return ids


@dataclass
class Drained:
    results: Counter[str]  # request id -> how many results were published for it
    statuses: dict[str, str]
    dead_letters: set[str]

    def accounted(self) -> set[str]:
        return set(self.results) | self.dead_letters

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.results.values())


async def drain(settings: Settings, expected: set[str], timeout_s: float,
                settle_s: float = 3.0) -> Drained:
    """Read results and dead letters from the start until `expected` is covered (+ settle),
    as the settings' readers do (read_committed under exactly-once delivery)."""
    codec = result_codec()
    isolation = "read_committed" if settings.delivery == "exactly_once" else "read_uncommitted"
    consumer = AIOKafkaConsumer(settings.results_topic, settings.dlq_topic,
                                bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                isolation_level=isolation)
    await consumer.start()
    drained = Drained(Counter(), {}, set())
    deadline = time.monotonic() + timeout_s
    covered_at: float | None = None
    try:
        while time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                for record in records:
                    request_id = (record.key or b"").decode()
                    if tp.topic == settings.dlq_topic:
                        drained.dead_letters.add(request_id)
                        continue
                    result = codec.decode(record.value or b"")
                    drained.results[result["request_id"]] += 1
                    drained.statuses[result["request_id"]] = result["status"]
            if covered_at is None and expected <= drained.accounted():
                covered_at = time.monotonic()
            if covered_at is not None and time.monotonic() - covered_at > settle_s:
                break
    finally:
        await consumer.stop()
    return drained


CHDB_HOLDER = """
import sys
from pathlib import Path
from streams.analytics.storage import connect_chdb
client = connect_chdb(Path(sys.argv[1]))
print("holding", flush=True)
sys.stdin.read()  # hold the engine's lock until the test closes our stdin
client.close()
"""

CHDB_COUNT = """
import json, sys
from pathlib import Path
from streams.analytics.storage import connect_chdb
client = connect_chdb(Path(sys.argv[1]))
raw = client.query("SELECT count() FROM streamserve.request_log").result_rows[0][0]
rows = client.query("SELECT request_id, count() FROM streamserve.request_log FINAL "
                    "GROUP BY request_id").result_rows
print(json.dumps({"raw": raw, "per_request": {rid: n for rid, n in rows}}))
client.close()
"""


def hold_chdb(path: Path) -> subprocess.Popen[str]:
    """Another process owning the chDB path: for the worker, ClickHouse is unavailable."""
    holder = subprocess.Popen([sys.executable, "-c", CHDB_HOLDER, str(path)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def release_chdb(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=60)


def count_log_rows(path: Path) -> dict[str, Any]:
    """Read the request log in a fresh process (chDB: one path per process)."""
    done = subprocess.run([sys.executable, "-c", CHDB_COUNT, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
