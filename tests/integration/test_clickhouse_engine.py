"""The embedded ClickHouse engine (chDB) through streams.analytics.storage: tables, reopen,
locks, migrations.

chDB hosts one engine path per process, so every test closes its clients before the next opens.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.analytics.migrations import MIGRATIONS, migrate
from streams.analytics.sink.request_log import COLUMNS
from streams.analytics.storage import connect_chdb
from streams.errors import StorageError

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_mergetree_rows_survive_close_and_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    client = connect_chdb(path)
    try:
        client.command("CREATE DATABASE IF NOT EXISTS t")
        client.command(
            "CREATE TABLE t.events (id UInt32, model LowCardinality(String), "
            "at DateTime64(3), ms Float64) ENGINE = MergeTree ORDER BY (model, id)"
        )
        now_ms = int(time.time() * 1000)
        ids = list(range(1, 10_001))
        columns = [ids, ["m1", "m2"] * 5_000, [now_ms + i for i in ids], [float(i) for i in ids]]
        client.insert("t.events", columns, column_names=["id", "model", "at", "ms"],
                      column_oriented=True)
        count, p99, models = client.query(
            "SELECT count(), quantile(0.99)(ms), uniqExact(model) FROM t.events"
        ).result_rows[0]
        assert (count, models) == (10_000, 2)
        assert p99 == pytest.approx(9_900, rel=0.01)
    finally:
        client.close()

    # Reopening the same path in this process works once every client is closed.
    client = connect_chdb(path)
    try:
        assert client.query("SELECT count() FROM t.events").result_rows[0][0] == 10_000
    finally:
        client.close()

    done = run_python(
        "from pathlib import Path; from streams.analytics.storage import connect_chdb; "
        f"c = connect_chdb(Path({str(path)!r})); "
        "print(c.query('SELECT count(), max(ms) FROM t.events').result_rows[0]); c.close()"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(10000, 10000.0)"


def test_a_second_process_gets_a_clear_lock_error(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    client = connect_chdb(path)
    try:
        done = run_python(
            "import sys; from pathlib import Path\n"
            "from streams.analytics.storage import connect_chdb\n"
            "from streams.errors import StorageLockedError\n"
            f"try:\n    connect_chdb(Path({str(path)!r}))\n"
            "except StorageLockedError as exc:\n    print(exc); sys.exit(3)\n"
        )
        assert done.returncode == 3, done.stderr[-2000:]
        assert "locked by another process" in done.stdout
        assert "PID" in done.stdout
    finally:
        client.close()


def test_another_path_in_the_same_process_is_a_storage_error(tmp_path: Path) -> None:
    client = connect_chdb(tmp_path / "one")
    try:
        with pytest.raises(StorageError, match="cannot open chDB"):
            connect_chdb(tmp_path / "two")
    finally:
        client.close()


def test_migrations_applied_twice_are_a_no_op(tmp_path: Path) -> None:
    client = connect_chdb(tmp_path / "chdb")
    try:
        assert migrate(client, "ss") == [m.version for m in MIGRATIONS]
        assert migrate(client, "ss") == []
        rows = client.query("SELECT version FROM ss.schema_migrations ORDER BY version")
        assert [r[0] for r in rows.result_rows] == [m.version for m in MIGRATIONS]
        described = client.query("DESCRIBE TABLE ss.request_log").result_rows
        types = {name: kind for name, kind, *_ in described}
        assert {name: types[name] for name, _ in COLUMNS} == dict(COLUMNS)
        assert types["inserted_at"] == "DateTime64(3)"
    finally:
        client.close()


def test_a_request_logged_twice_counts_once(tmp_path: Path) -> None:
    client = connect_chdb(tmp_path / "chdb")
    try:
        migrate(client, "ss")
        now_ms = int(time.time() * 1000)
        names = ["request_id", "model", "status", "created_at", "completed_at", "inference_ms"]
        # A replay: the same request in two different blocks (no shared token) ...
        for inference_ms in (10.0, 12.0):
            client.insert("ss.request_log", [["r1", "m", "ok", now_ms, now_ms, inference_ms]],
                          column_names=names)
        # ... and a retried block: same insert_deduplication_token, dropped at insert time.
        for _ in range(2):
            client.insert("ss.request_log", [["r2", "m", "error", now_ms, now_ms, 0.0]],
                          column_names=names, settings={"insert_deduplication_token": "tok-r2"})
        assert client.query("SELECT count() FROM ss.request_log").result_rows[0][0] == 3
        rates = client.query("SELECT requests, ok, errors FROM ss.status_rates(since_s=3600)")
        assert rates.result_rows == [(2, 1, 1)]
        throughput = client.query(
            "SELECT sum(requests) FROM ss.throughput_per_minute(since_s=3600)"
        )
        assert throughput.result_rows[0][0] == 2
    finally:
        client.close()
