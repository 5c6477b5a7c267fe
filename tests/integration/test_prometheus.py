"""A real Prometheus server scrapes a real worker; its query API sees what was sent."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.client.library import new_request
from streams.kafka.stack import LocalCluster
from streams.kafka.stack.broker import free_port
from streams.kafka.topics import ensure_topics, service_topics
from streams.worker.metrics import LATENCY_BUCKETS_S
from tests.integration.fault_harness import WorkerProcess, wait_until, write_registry
from tests.integration.pipeline_harness import client_for, pipeline_settings

PROMETHEUS = shutil.which("prometheus")


def _query(port: int, expression: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _scalar(port: int, expression: str) -> float | None:
    result = _query(port, expression)
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Prometheus server on loopback; the test writes its scrape targets file."""
    if PROMETHEUS is None:
        pytest.fail("the `prometheus` binary is not installed (apt-get install prometheus)")
    port = free_port()
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: streamserve\n"
        "    file_sd_configs: [{files: ['" + str(targets) + "'], refresh_interval: 1s}]\n")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(tmp_path / "prometheus.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        yield port, targets
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_prometheus_scrapes_request_counter_and_latency_histogram(
        kafka: LocalCluster, prometheus: tuple[int, Path], tmp_path: Path) -> None:
    prom_port, targets = prometheus
    settings = pipeline_settings(kafka, topic_partitions=2)
    await ensure_topics(settings, service_topics(settings))
    worker = WorkerProcess("p0", settings, write_registry(tmp_path, 0.01), tmp_path / "p0.log",
                           extra_env={"STREAMSERVE_REQUEST_LOG": "false"}).start()
    try:
        await wait_until(lambda: worker.state().get("ready"), 90, "the worker to be ready")
        targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{worker.web_port}"]}]))
        async with client_for(settings) as client:
            results = await client.infer_many(
                [new_request("encoder", "embed", text=f"metric me {i}") for i in range(300)],
                timeout_s=60)
        assert {r["status"] for r in results} == {"ok"}

        def scraped_all() -> bool:
            total = _scalar(prom_port, 'sum(streamserve_requests_total{status="ok"})')
            return total is not None and total >= 300

        deadline = time.monotonic() + 60
        while not scraped_all():
            assert time.monotonic() < deadline, "Prometheus never saw the 300 requests"
            await asyncio.sleep(1)
        assert _scalar(prom_port, 'sum(streamserve_requests_total{status="ok"})') == 300
        assert _scalar(prom_port, "sum(streamserve_end_to_end_seconds_count)") == 300
        p50 = _scalar(prom_port, "histogram_quantile(0.5, "
                                 "sum by (le) (streamserve_end_to_end_seconds_bucket))")
        totals = sorted(r["timings"]["total_ms"] / 1000 for r in results)
        assert p50 is not None
        # histogram_quantile interpolates inside the bucket that holds the true median.
        true_p50 = totals[len(totals) // 2 - 1]
        bounds = (0.0, *LATENCY_BUCKETS_S, float("inf"))
        upper = next(i for i, b in enumerate(bounds) if b >= true_p50)
        assert bounds[upper - 1] <= p50 <= bounds[upper], (p50, true_p50)
        batches = _scalar(prom_port, "sum(streamserve_batch_size_count)")
        assert batches is not None and 1 <= batches <= 300
    finally:
        worker.stop()
