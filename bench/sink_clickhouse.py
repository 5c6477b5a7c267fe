"""Request-log sink on chDB: insert throughput (rows/s) and the caller's cost of add() (µs/row).

    .venv/bin/python bench/sink_clickhouse.py [--rows 200000] [--repeats 3]

Rows are built before timing. `rows_per_s`: first add() to flush() returning, i.e. rows landed
in chDB per second. `add_us_wall`: the caller's wall time per add() in that run, while the sink
thread builds and inserts blocks on the same GIL. `add_us_cpu`: the caller's own CPU per add()
(thread_time) with the sink thread idle, the pure buffering cost. `process_cpu_us_per_row`: CPU of
the whole process (Python block building, clickhouse-connect encoding, the chDB engine) per row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from streams.analytics.migrations import migrate
from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.clickhouse import ClickHouseInserter
from streams.analytics.sink.options import SinkOptions
from streams.analytics.sink.request_log import Block, RequestLogRow
from streams.analytics.storage import client_factory, connect
from streams.config import Settings


def make_rows(count: int, run: int) -> list[RequestLogRow]:
    now = time.time()
    return [
        RequestLogRow(f"run{run}-{i:08d}", f"model-{i % 3}", "ok", created_at=now - 0.2,
                      completed_at=now, worker="bench", batch_size=32, partition=i % 4,
                      offset=i, tokens_in=32, kafka_wait_ms=3.0, queue_wait_ms=1.5,
                      inference_ms=40.0 + i % 50, total_ms=50.0 + i % 50)
        for i in range(count)
    ]


def run_once(settings: Settings, spool: Path, rows: list[RequestLogRow]) -> dict[str, float]:
    table = f"`{settings.clickhouse_database}`.request_log"
    inserter = ClickHouseInserter(client_factory(settings), table)
    blocks: list[int] = []

    def insert(block: Block) -> None:
        blocks.append(block.rows)
        inserter(block)

    sink = RequestLogSink(insert, spool)
    cpu, start = time.process_time(), time.perf_counter()
    for row in rows:
        sink.add(row)
    added = time.perf_counter()
    assert sink.flush(timeout=300)
    done, cpu = time.perf_counter(), time.process_time() - cpu
    sink.close()
    inserter.close()
    return {
        "rows_per_s": len(rows) / (done - start),
        "add_us_wall": (added - start) / len(rows) * 1e6,
        "process_cpu_us_per_row": cpu / len(rows) * 1e6,
        "blocks": len(blocks),
        "mean_block_rows": statistics.mean(blocks),
    }


def add_cpu(spool: Path, rows: list[RequestLogRow]) -> float:
    idle = SinkOptions(block_rows=len(rows) + 1, flush_interval_s=3600, max_buffered_rows=10**9)
    sink = RequestLogSink(lambda block: None, spool, idle)
    start = time.thread_time()
    for row in rows:
        sink.add(row)
    elapsed = time.thread_time() - start
    sink.close()
    return elapsed / len(rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), clickhouse_url=None)
        client = connect(settings)  # held open: the engine stays up between runs
        migrate(client, settings.clickhouse_database)
        runs = []
        for run in range(args.repeats):
            rows = make_rows(args.rows, run)
            runs.append(run_once(settings, Path(tmp) / "spool" / f"b{run}.jsonl", rows))
        idle = [add_cpu(Path(tmp) / "spool" / f"n{i}.jsonl", make_rows(args.rows, 99))
                for i in range(args.repeats)]
        stored = client.query("SELECT count() FROM streamserve.request_log FINAL").result_rows
        client.close()
    report = {
        "rows_per_run": args.rows,
        "rows_per_s_median": statistics.median(r["rows_per_s"] for r in runs),
        "add_us_wall_median": statistics.median(r["add_us_wall"] for r in runs),
        "add_us_cpu_median": statistics.median(idle),
        "process_cpu_us_per_row_median": statistics.median(
            r["process_cpu_us_per_row"] for r in runs),
        "runs": runs,
        "rows_stored": stored[0][0],
        "load_avg_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
