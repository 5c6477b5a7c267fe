"""The request-log sink against chDB: volume, and a ClickHouse that is unreachable at first."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from streams.analytics.migrations import migrate, quote_database
from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.clickhouse import ClickHouseInserter, open_request_log_sink
from streams.analytics.sink.options import SinkOptions
from streams.analytics.sink.request_log import RequestLogRow
from streams.analytics.storage import client_factory, connect
from streams.config import Settings

pytestmark = pytest.mark.integration


def rows(count: int, prefix: str = "r") -> list[RequestLogRow]:
    now = time.time()
    return [
        RequestLogRow(f"{prefix}-{i}", f"model-{i % 3}", "ok", created_at=now - 1,
                      completed_at=now, batch_size=8, inference_ms=float(i % 100))
        for i in range(count)
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def table(settings: Settings) -> str:
    return f"{quote_database(settings.clickhouse_database)}.request_log"


def count_final(settings: Settings) -> tuple[int, int]:
    client = connect(settings)
    try:
        result = client.query(f"SELECT count(), uniqExact(request_id) FROM {table(settings)} FINAL")
        total, unique = result.result_rows[0]
        return int(total), int(unique)
    finally:
        client.close()


@pytest.fixture
def chdb_settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path, clickhouse_url=None)
    client = connect(settings)
    try:
        migrate(client, settings.clickhouse_database)
    finally:
        client.close()
    return settings


def test_the_sink_writes_20000_rows(chdb_settings: Settings) -> None:
    sink = open_request_log_sink(chdb_settings, "worker-1")
    assert sink.spool_depth == 0
    assert (chdb_settings.data_dir / "spool" / "worker-1.lock").exists()
    try:
        for item in rows(20_000):
            sink.add(item)
        assert sink.flush(timeout=60)
        assert (sink.rows_written, sink.insert_errors, sink.spool_depth) == (20_000, 0, 0)
    finally:
        assert sink.close()
    assert count_final(chdb_settings) == (20_000, 20_000)


def test_rows_spool_while_unreachable_then_land_in_chdb(
    chdb_settings: Settings, tmp_path: Path
) -> None:
    unreachable = Settings(data_dir=tmp_path, clickhouse_url=f"http://127.0.0.1:{free_port()}")
    down = ClickHouseInserter(client_factory(unreachable, timeout_s=1.0), table(unreachable))
    options = SinkOptions(max_attempts=2, backoff_s=0.01, replay_interval_s=0.2)
    sink = RequestLogSink(down, tmp_path / "spool" / "request_log.jsonl", options)
    try:
        for item in rows(2_500):
            sink.add(item)
        assert not sink.flush(timeout=1.0)
        assert sink.spool_depth == 2_500 and sink.rows_written == 0
        assert sink.insert_errors >= 2
        up = ClickHouseInserter(client_factory(chdb_settings), table(chdb_settings))
        sink.set_insert(up)
        assert sink.flush(timeout=60)
        assert sink.spool_depth == 0 and sink.rows_written == 2_500
    finally:
        sink.close()
    assert count_final(chdb_settings) == (2_500, 2_500)
