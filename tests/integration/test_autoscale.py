"""Autoscaling with real worker processes on a real broker: a burst makes the local supervisor
scale up, the backlog drains, it scales back down after the window, and no request is lost.

Also `streamserve plan` and the request-log history over a real chDB (in a child process:
chDB allows one data path per process).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.autoscale.supervisor import Supervisor
from streams.kafka.stack import LocalCluster
from streams.kafka.topics import ensure_topics, service_topics
from tests.integration.fault_harness import ROOT, drain, seed, wait_until, write_registry
from tests.integration.pipeline_harness import pipeline_settings

pytestmark = pytest.mark.integration

BATCH_DELAY_S = 0.2  # the fake model: 16 requests per 0.2 s = 80/s per worker at most
BURST = 3000  # ≈ 38 s for one worker; the drain target is 5 s


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.replace("/metrics", "/ready"), timeout=1) as response:
            return bool(json.loads(response.read()).get("ready"))
    except OSError:
        return False


def _partitions(url: str) -> int:
    try:
        with urllib.request.urlopen(url.replace("/metrics", "/ready"), timeout=1) as response:
            return len(json.loads(response.read()).get("partitions", []))
    except OSError:  # not up, or 503: no partitions yet
        return 0


def _timeline(supervisor: Supervisor) -> list[tuple[float, int, int | None, int]]:
    """(seconds, replicas, workers active, lag) of every poll where replicas or active
    workers changed, and every 3rd poll while the backlog drains."""
    points: list[tuple[float, int, int | None, int]] = []
    for i, tick in enumerate(supervisor.timeline):
        if tick.keda is None:
            continue  # the line of a scale event; the next poll shows its effect
        point = (round(tick.at_s, 1), tick.replicas, tick.active, tick.lag)
        if not points or point[1:3] != points[-1][1:3] or (tick.lag and i % 3 == 0):
            points.append(point)
    return points


async def test_burst_scales_up_drains_and_scales_down_without_loss(
        kafka: LocalCluster, tmp_path: Path) -> None:
    settings = pipeline_settings(
        kafka, topic_partitions=4, data_dir=tmp_path / "up", request_log=False,
        model_registry=write_registry(tmp_path, BATCH_DELAY_S), registry_reload_s=0,
        autoscale_min_replicas=1, autoscale_max_replicas=3, autoscale_target_drain_s=5.0,
        autoscale_poll_s=1.0, autoscale_downscale_window_s=5.0, autoscale_lag_threshold=100)
    await ensure_topics(settings, service_topics(settings))
    lines: list[str] = []
    supervisor = Supervisor(settings, None, say=lines.append)
    running = asyncio.create_task(supervisor.run())
    try:
        await wait_until(lambda: len(supervisor.workers) == 1 and _ready(
            supervisor.workers[0].metrics_url), 90, "the first worker")
        # full batches before the burst: the cost per request is measured as under a backlog
        warm = await seed(settings, 64, rate_per_s=10_000, prefix="w")
        await asyncio.sleep(3)
        burst_at = supervisor.elapsed()
        started = time.monotonic()
        ids = warm + await seed(settings, BURST, rate_per_s=20_000, prefix="b")
        drained = await drain(settings, set(ids), timeout_s=120, settle_s=1.0)
        drain_s = time.monotonic() - started - 1.0
        await wait_until(lambda: len(supervisor.workers) == 1 and not supervisor.retiring,
                         60, "scale back down to one worker")
        # The survivor gets the retired workers' partitions only after the session timeout
        # (10 s): static members (stable worker ids) do not leave the group on shutdown.
        handover_s = await wait_until(lambda: _partitions(
            supervisor.workers[min(supervisor.workers)].metrics_url) == 4, 60, "handover")
        peak = max(tick.replicas for tick in supervisor.timeline)
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 150)
    alone = (BURST + len(warm)) * BATCH_DELAY_S / 16
    print(f"\nburst of {BURST} at t={burst_at:.1f}s, drained in {drain_s:.1f}s "
          f"(one worker alone: {alone:.0f}s), partitions back on one worker {handover_s:.1f}s "
          f"after the last retired worker exited, "
          f"duplicates {drained.duplicates()}\n(t, replicas, active, lag): {_timeline(supervisor)}")
    print("\n".join(lines))
    assert set(ids) == drained.accounted()
    assert set(drained.statuses.values()) == {"ok"}
    assert peak >= 2
    assert all(worker.exited for worker in supervisor.started)
    assert any("KEDA rule" in line and "model-s" in line for line in lines)


HISTORY_AND_PLAN = """
import json, sys, time
from datetime import timedelta
from pathlib import Path
from streams.autoscale.history import read_history
from streams.analytics.capacity.report import plan_report
from streams.config import Settings
from streams.analytics.migrations import migrate
from streams.analytics.sink.request_log import COLUMN_TYPES, RequestLogRow, to_block
from streams.analytics.storage import connect

settings = Settings(data_dir=Path(sys.argv[1]), topic_partitions=4)
client = connect(settings)
migrate(client, settings.clickhouse_database)
now = time.time()
minute = now // 60 * 60  # each burst inside one calendar minute: the plan groups by minute
rows = []
for i in range(120):  # 40 with one worker; 2 minutes later 80 with two, twice the rate
    two = i >= 40
    rows.append(RequestLogRow(
        f"r{i}", "gen" if i % 10 == 0 else "emb", "ok", created_at=now - 400 + i,
        completed_at=minute - (120 if two else 240) + 5 + (i % 40) * 0.25,
        worker=f"w{i % 2}" if two else "w0",
        batch_size=4, kafka_wait_ms=110.0, batch_wait_ms=10.0, queue_wait_ms=50.0,
        inference_ms=400.0 if i % 10 == 0 else 20.0, total_ms=250.0))
block = to_block(rows)
client.insert("streamserve.request_log", block.columns, column_names=list(block.names),
              column_type_names=list(COLUMN_TYPES), column_oriented=True)
client.close()
history = read_history(settings)
print(json.dumps({"history": [history.cost_s, history.mix, history.requests],
                  "plan": plan_report(settings, timedelta(hours=1), [1, 2, 4], 10.0)}))
"""


def test_request_log_history_and_plan_on_chdb(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", HISTORY_AND_PLAN, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    cost, mix, requests = out["history"]
    assert requests == 120
    assert cost == pytest.approx({"gen": 0.1, "emb": 0.005})  # inference_ms / batch_size
    assert mix == pytest.approx({"gen": 12 / 120, "emb": 108 / 120})
    print("\n" + out["plan"])
    plan = out["plan"]
    # 40 requests in 9.75 s with one worker, 80 in two 9.75 s minutes with two: x2 measured
    assert "source: request log, last 1:00:00" in plan and "emb 90%, gen 10%" in plan
    assert "N=1 4.1 req/s | N=2 8.2 req/s (x2.00, Karp–Flatt e = 0.000)" in plan
    assert "therefore not validated" in plan  # two worker counts: an exact fit
    assert "target 10 req/s: N = 3 worker(s)" in plan  # 3 x 4.1 = 12.3 >= 10 (Amdahl, σ = 0)
