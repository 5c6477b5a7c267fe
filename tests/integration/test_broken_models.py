"""Slow or broken models never break the group: real worker processes, fake runners that raise
on one input, fail transiently, fail every batch, or hang. Every request ends with exactly one
final status, and /health and /ready say what the worker can do."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from models.fake import HANG_MARKER, RAISE_MARKER
from streams.autoscale.supervisor import Supervisor
from streams.client.library import new_request
from streams.config import Settings
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from tests.integration.fault_harness import WorkerProcess, drain, send_requests, wait_until

MODELS = """
[[models]]
name = "poison"
version = "1"
tasks = ["embed"]
kind = "fake"
max_batch_size = 8
default = true

[[models]]
name = "flaky"
version = "1"
tasks = ["embed"]
kind = "fake"
fake_fail = "transient:2"
transient_retries = 2
retry_backoff_s = 0.1
default = true

[[models]]
name = "broken"
version = "1"
tasks = ["embed"]
kind = "fake"
max_batch_size = 2
fake_fail_while = "{broken}"
breaker_after = 2
breaker_cooldown_s = 1.0
default = true
"""

HANGS = """
[[models]]
name = "stuck"
version = "1"
tasks = ["embed"]
kind = "fake"
max_batch_size = 4
batch_timeout_s = 2
default = true
"""


def endpoint(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return 0, {}


def settings_for(kafka: LocalCluster, tmp_path: Path, registry: str, **extra: Any) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    path = tmp_path / f"registry-{suffix}.toml"
    path.write_text(registry)
    return Settings(kafka_bootstrap_servers=kafka.bootstrap_servers,
                    requests_topic=f"req-{suffix}", results_topic=f"res-{suffix}",
                    dlq_topic=f"dlq-{suffix}", tokens_topic=f"tok-{suffix}",
                    consumer_group=f"g-{suffix}", topic_partitions=2, max_wait_ms=50,
                    model_registry=path, request_log=False, **extra)


async def test_failing_models_give_every_request_one_final_status(kafka: LocalCluster,
                                                                  tmp_path: Path) -> None:
    broken = tmp_path / "weights-broken"
    broken.touch()
    settings = settings_for(kafka, tmp_path, MODELS.format(broken=broken))
    await ensure_topics(settings, service_topics(settings))
    worker = WorkerProcess("w-broken", settings, settings.model_registry or Path(),
                           tmp_path / "w.log",
                           extra_env={"STREAMSERVE_REQUEST_LOG": "false"}).start()
    try:
        await wait_until(lambda: worker.state().get("ready"), 90, "the worker")
        poison = [new_request("poison", "embed", text=f"x {RAISE_MARKER}" if i == 3 else
                              f"fine {i}", request_id=f"p{i}") for i in range(8)]
        flaky = [new_request("flaky", "embed", text=f"f {i}", request_id=f"f{i}")
                 for i in range(3)]
        await send_requests(settings, poison + flaky)
        early = await drain(settings, {r["request_id"] for r in poison + flaky}, 60)
        assert early.statuses.pop("p3") == "error"
        assert set(early.statuses.values()) == {"ok"}  # 7 poison mates + 3 flaky, all ok
        assert "p3" in early.dead_letters and len(early.dead_letters) == 1

        backlog = [new_request("broken", "embed", text=f"b {i}", request_id=f"b{i}")
                   for i in range(12)]
        await send_requests(settings, backlog)
        await wait_until(lambda: endpoint(worker.web_port, "/ready")[0] == 503, 60,
                         "the breaker to open")
        _, ready = endpoint(worker.web_port, "/ready")
        assert "circuit breaker open" in next(iter(ready["holds"].values()))
        assert endpoint(worker.web_port, "/health")[0] == 200  # not ready, but alive
        await asyncio.sleep(2.5)  # probes fail meanwhile; the backlog must not turn into errors
        partial = await drain(settings, {"b0"}, 10, settle_s=1.0)
        failed = {i for i, s in partial.statuses.items() if i.startswith("b")}
        assert len(failed) == 4  # the two failed batches of two that opened the breaker
        broken.unlink()  # the weights are fixed: the next probe closes the breaker
        done = await drain(settings, {r["request_id"] for r in backlog}, 60)
        await wait_until(lambda: endpoint(worker.web_port, "/ready")[0] == 200, 30, "ready")
    finally:
        worker.stop()
    per_request = Counter(done.results[r["request_id"]] for r in backlog)
    assert per_request == Counter({1: 12})  # exactly one final status each
    statuses = Counter(done.statuses[r["request_id"]] for r in backlog)
    assert statuses == Counter({"ok": 8, "error": 4})


async def test_a_hung_model_fails_its_batch_and_the_supervisor_restarts_the_worker(
        kafka: LocalCluster, tmp_path: Path) -> None:
    settings = settings_for(kafka, tmp_path, HANGS, data_dir=tmp_path / "up",
                            registry_reload_s=0, autoscale_poll_s=1.0)
    await ensure_topics(settings, service_topics(settings))
    lines: list[str] = []
    supervisor = Supervisor(settings, 1, say=lines.append)
    running = asyncio.create_task(supervisor.run())
    try:
        await wait_until(lambda: len(supervisor.workers) == 1 and endpoint(
            supervisor.workers[0].web_port, "/ready")[0] == 200, 90, "the worker")
        first = supervisor.workers[0]
        hung = new_request("stuck", "embed", text=f"x {HANG_MARKER}", request_id="hung")
        await send_requests(settings, [hung])
        await wait_until(lambda: endpoint(first.web_port, "/health")[0] == 503, 30,
                         "/health to turn 503")
        _, body = endpoint(first.web_port, "/health")
        assert "timeout" in json.dumps(body["faults"])
        after = [new_request("stuck", "embed", text=f"later {i}", request_id=f"l{i}")
                 for i in range(5)]
        await send_requests(settings, after)  # queued behind the wedged lane: uncommitted
        await wait_until(lambda: supervisor.workers and supervisor.workers[0] is not first
                         and endpoint(supervisor.workers[0].web_port, "/ready")[0] == 200,
                         120, "the supervisor to restart the worker")
        drained = await drain(settings, {"hung"} | {r["request_id"] for r in after}, 90)
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 150)
    assert drained.statuses["hung"] == "error" and "hung" in drained.dead_letters
    assert all(drained.statuses[f"l{i}"] == "ok" for i in range(5))
    assert any("health" in line.lower() for line in lines), lines
