"""Analytics over known request-log rows on chDB: percentiles, rates, batch sizes, table, plot."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from streams.analytics import stats as analytics
from streams.analytics.migrations import migrate
from streams.analytics.plots import plot_latency_percentiles
from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.clickhouse import ClickHouseInserter
from streams.analytics.sink.request_log import RequestLogRow
from streams.analytics.storage import client_factory, connect
from streams.config import Settings

pytestmark = pytest.mark.integration
WINDOW = timedelta(minutes=15)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def known_rows() -> list[RequestLogRow]:
    now = time.time()

    def make(rid: str, model: str, status: str, **extra: float) -> RequestLogRow:
        return RequestLogRow(rid, model, status, created_at=now - 5, completed_at=now - 1,
                             **extra)  # type: ignore[arg-type]

    rows = [
        make(f"ok-{i}", "m1", "ok", inference_ms=float(i), queue_wait_ms=2.0 * i,
             total_ms=10.0 * i, batch_size=4 if i <= 36 else 8)
        for i in range(1, 101)
    ]
    rows += [make(f"err-{i}", "m1", "error", batch_size=0) for i in range(20)]
    rows += [make(f"exp-{i}", "m1", "expired", batch_size=0) for i in range(10)]
    rows += [make(f"m2-{i}", "m2", "ok", inference_ms=5.0, batch_size=1, compute_ms=5.0,
                  attempt=3 if i < 5 else 1) for i in range(50)]  # five computed 3 times
    return rows


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """chDB with the known rows written through the sink, plus a replay of ten of them."""
    tmp_path = tmp_path_factory.mktemp("analytics")
    settings = Settings(data_dir=tmp_path, clickhouse_url=None)
    client = connect(settings)
    try:
        migrate(client, settings.clickhouse_database)
    finally:
        client.close()
    table = f"`{settings.clickhouse_database}`.request_log"
    sink = RequestLogSink(ClickHouseInserter(client_factory(settings), table),
                          tmp_path / "spool" / "request_log.jsonl")
    try:
        rows = known_rows()
        for row in rows:
            sink.add(row)
        assert sink.flush(timeout=30)
        for row in rows[:10]:  # a replay after a rebalance: the same requests, a new block
            sink.add(row)
        assert sink.close(timeout=30)
    finally:
        sink.close()
    yield settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[Client]:
    client = connect(settings)
    yield client
    client.close()


def test_percentiles_by_stage_and_model(client: Client) -> None:
    raw = client.query("SELECT count() FROM streamserve.request_log").result_rows[0][0]
    assert raw == 190  # the replayed rows are stored twice...
    latency = {(r.model, r.stage): r for r in analytics.stage_latency(client, WINDOW)}
    inference = latency[("m1", "inference")]
    assert inference.n == 100  # ...but counted once; errors and expiries have no latency
    assert inference.p50_ms == pytest.approx(50.5, abs=1)
    assert inference.p95_ms == pytest.approx(95, abs=1)
    assert inference.p99_ms == pytest.approx(99, abs=1)
    assert latency[("m1", "queue_wait")].p50_ms == pytest.approx(101, abs=2)
    assert latency[("m1", "total")].p99_ms == pytest.approx(990, abs=10)
    assert latency[("m2", "inference")].p99_ms == pytest.approx(5.0)
    assert ("m1", "time_to_first_token") not in latency  # no streaming rows yet


def test_error_and_expiry_rates(client: Client) -> None:
    rates = {r.model: r for r in analytics.status_rates(client, WINDOW)}
    m1 = rates["m1"]
    assert (m1.requests, m1.ok, m1.errors, m1.expired, m1.rejected) == (130, 100, 20, 10, 0)
    assert m1.error_rate == pytest.approx(20 / 130)
    assert m1.expiry_rate == pytest.approx(10 / 130)
    assert rates["m2"].error_rate == 0


def test_batch_sizes_and_throughput(client: Client) -> None:
    sizes = [(b.model, b.batch_size, b.requests, b.batches)
             for b in analytics.batch_sizes(client, WINDOW)]
    assert sizes == [("m1", 4, 36, 9.0), ("m1", 8, 64, 8.0), ("m2", 1, 50, 50.0)]
    per_minute = analytics.throughput_per_minute(client, WINDOW)
    assert sum(r.requests for r in per_minute) == 180
    assert sum(r.errors for r in per_minute) == 20
    assert analytics.status_rates(client, timedelta(seconds=1)) == []  # rows are 5 s old


def test_table_and_plot(client: Client, tmp_path: Path) -> None:
    rates = analytics.status_rates(client, WINDOW)
    table = analytics.format_table(rates, "Requests by status")
    assert table.splitlines()[1].split()[:3] == ["model", "requests", "ok"]
    assert "15.38%" in table
    out = plot_latency_percentiles(analytics.stage_latency(client, WINDOW), tmp_path / "p.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 5_000
    empty = plot_latency_percentiles([], tmp_path / "empty.png")
    assert empty.read_bytes()[:8] == PNG_MAGIC


def test_stats_report(settings: Settings, tmp_path: Path) -> None:
    report = analytics.stats_report(settings, WINDOW, plot_path=tmp_path / "stats.png")
    for title in ("Requests by status", "Latency by stage", "Batch sizes", "Throughput"):
        assert title in report
    assert (tmp_path / "stats.png").read_bytes()[:8] == PNG_MAGIC
    assert analytics.parse_since("15m") == WINDOW
    assert analytics.parse_since("2h") == timedelta(hours=2)


def test_replay_cost_counts_computations_redone(settings: Settings) -> None:
    client = connect(settings)
    try:
        cost = {row.model: row for row in analytics.replay_cost(client, WINDOW)}
    finally:
        client.close()
    m2 = cost["m2"]
    assert (m2.requests, m2.replayed, m2.extra_computations) == (50, 5, 10)
    assert m2.total_compute_ms == 250.0 and m2.replay_compute_ms == 50.0
    assert abs(m2.replay_share - 50.0 / 300.0) < 1e-9
    assert cost["m1"].replayed == 0
