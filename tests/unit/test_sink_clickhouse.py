"""The request-log sink against a fake target: blocks, retries with one token, spool, replay."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.options import SinkOptions
from streams.analytics.sink.request_log import (
    COLUMN_NAMES,
    Block,
    RequestLogRow,
    block_token,
    to_block,
)
from streams.analytics.sink.spool import Spool
from streams.errors import SpoolError, StorageError

FAST = SinkOptions(
    block_rows=10, flush_interval_s=0.05, max_attempts=3, backoff_s=0.001, replay_interval_s=0.05
)
# Blocks form only at block_rows or on flush(); replays only when flush() forces them.
BY_FLUSH = SinkOptions(
    block_rows=10, flush_interval_s=30, max_attempts=3, backoff_s=0.001, replay_interval_s=60
)


class FakeTarget:
    """Fails the next `failures` calls (or every call while `down`), then records blocks."""

    def __init__(self, failures: int = 0, down: bool = False) -> None:
        self.failures, self.down = failures, down
        self.tokens: list[str] = []  # token of every call, failed or not
        self.blocks: list[Block] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, block: Block) -> None:
        self.gate.wait()
        self.tokens.append(block.token)
        if self.down or self.failures > 0:
            self.failures -= 1
            raise ConnectionError("ClickHouse is down")
        self.blocks.append(block)

    def request_ids(self) -> list[str]:
        return [rid for block in self.blocks for rid in block.columns[0]]


def row(i: int, **changes: object) -> RequestLogRow:
    now = 1_700_000_000.0 + i
    base = RequestLogRow(f"req-{i}", "minilm", "ok", created_at=now, completed_at=now + 0.25)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "request_log.jsonl"


def test_rows_go_out_in_blocks_and_flush_sends_the_rest(spool_path: Path) -> None:
    target = FakeTarget()
    sink = RequestLogSink(target, spool_path, dataclasses.replace(FAST, flush_interval_s=30))
    try:
        for i in range(25):
            sink.add(row(i))
        deadline = time.monotonic() + 5
        while sink.rows_written < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.rows_written >= 20  # block_rows reached: sent without waiting for a flush
        assert sink.flush(timeout=5)
        assert sorted(target.request_ids()) == sorted(f"req-{i}" for i in range(25))
        assert all(block.rows >= 1 for block in target.blocks)
        assert sink.insert_errors == 0 and sink.spool_depth == 0
    finally:
        sink.close()


def test_a_small_buffer_goes_out_after_the_interval(spool_path: Path) -> None:
    target = FakeTarget()
    sink = RequestLogSink(target, spool_path, dataclasses.replace(FAST, block_rows=1000))
    try:
        for i in range(3):
            sink.add(row(i))
        deadline = time.monotonic() + 5
        while sink.rows_written < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.rows_written == 3
    finally:
        sink.close()


def test_a_failed_block_is_retried_with_the_same_token(spool_path: Path) -> None:
    target = FakeTarget(failures=2)
    sink = RequestLogSink(target, spool_path, BY_FLUSH)
    try:
        for i in range(5):
            sink.add(row(i))
        assert sink.flush(timeout=5)
        assert len(target.tokens) == 3 and len(set(target.tokens)) == 1
        assert target.tokens[0] == block_token([f"req-{i}" for i in range(5)])
        assert (sink.insert_errors, sink.rows_written, sink.spool_depth) == (2, 5, 0)
    finally:
        sink.close()


def test_rows_spool_while_down_and_replay_with_their_tokens(spool_path: Path) -> None:
    target = FakeTarget(down=True)
    sink = RequestLogSink(target, spool_path, BY_FLUSH)
    try:
        for i in range(5):
            sink.add(row(i))
        assert not sink.flush(timeout=0.5)
        # The thread spools after its last attempt; on a loaded machine that may come after
        # flush's 0.5 s, so wait for the state, then check it exactly.
        wait_until(lambda: sink.spool_depth == 5)
        assert sink.spool_depth == 5 and sink.rows_written == 0
        assert len(target.tokens) == 3 and len(set(target.tokens)) == 1  # max_attempts
        spooled = [json.loads(line) for line in spool_path.read_text().splitlines()]
        assert [line["token"] for line in spooled] == [target.tokens[0]]
        for i in range(5, 8):
            sink.add(row(i))
        assert not sink.flush(timeout=0.5)
        # degraded: the new block went straight to the spool; flush() forced one replay probe
        wait_until(lambda: sink.spool_depth == 8)
        assert len(target.tokens) == 4 and sink.spool_depth == 8
        target.down = False
        assert sink.flush(timeout=5)
        assert sorted(target.request_ids()) == sorted(f"req-{i}" for i in range(8))
        assert target.blocks[0].token == spooled[0]["token"]
        assert sink.spool_depth == 0 and spool_path.read_bytes() == b""
        assert (sink.rows_written, sink.rows_spooled, sink.insert_errors) == (8, 8, 4)
    finally:
        sink.close()


def test_the_spool_survives_a_restart(spool_path: Path) -> None:
    down = FakeTarget(down=True)
    first = RequestLogSink(down, spool_path, FAST)
    for i in range(30):
        first.add(row(i))
    assert not first.close(timeout=0.3)
    assert first.spool_depth == 30
    with pytest.raises(StorageError):
        first.add(row(99))
    up = FakeTarget()
    second = RequestLogSink(up, spool_path, FAST)
    try:
        assert second.flush(timeout=5)
        assert sorted(up.request_ids()) == sorted(f"req-{i}" for i in range(30))
    finally:
        second.close()


def test_one_spool_file_per_sink(spool_path: Path) -> None:
    sink = RequestLogSink(FakeTarget(), spool_path, FAST)
    try:
        with pytest.raises(SpoolError):
            Spool(spool_path)
    finally:
        sink.close()


def test_memory_is_bounded_while_an_insert_hangs(spool_path: Path) -> None:
    target = FakeTarget()
    target.gate.clear()  # the first insert call hangs
    options = dataclasses.replace(FAST, block_rows=5, max_buffered_rows=50)
    sink = RequestLogSink(target, spool_path, options)
    try:
        for i in range(200):
            sink.add(row(i))
        assert sink.buffered_rows < 50
        assert sink.spool_depth >= 100
        target.gate.set()
        assert sink.flush(timeout=5)
        assert sorted(set(target.request_ids())) == sorted(f"req-{i}" for i in range(200))
    finally:
        sink.close()


def test_set_insert_switches_the_target_and_replays(spool_path: Path) -> None:
    down, up = FakeTarget(down=True), FakeTarget()
    sink = RequestLogSink(down, spool_path, dataclasses.replace(FAST, replay_interval_s=60))
    try:
        for i in range(4):
            sink.add(row(i))
        assert not sink.flush(timeout=0.3)
        assert sink.set_insert(up) is down
        assert sink.flush(timeout=5)
        assert len(up.request_ids()) == 4
    finally:
        sink.close()


def test_a_torn_spool_line_is_skipped(spool_path: Path) -> None:
    spool = Spool(spool_path)
    spool.append([to_block([row(1), row(2)])])
    spool.close()
    with spool_path.open("ab") as out:
        out.write(b'{"token": "rl-torn", "names"')  # a crash mid-write
    spool = Spool(spool_path)
    try:
        assert spool.depth == 2
        spool.append([to_block([row(3)])])
        assert [block.rows for _, block in spool.replay()] == [2, 1]
    finally:
        spool.close()


def test_blocks_are_columns_with_millisecond_ticks() -> None:
    block = to_block([row(1, time_to_first_token_ms=12.5), row(2)])
    assert block.names == COLUMN_NAMES
    column = dict(zip(block.names, block.columns, strict=True))
    assert column["created_at"] == [1_700_000_001_000, 1_700_000_002_000]
    assert column["completed_at"] == [1_700_000_001_250, 1_700_000_002_250]
    assert column["time_to_first_token_ms"] == [12.5, None]
    assert block.token == to_block([row(1), row(2)]).token != to_block([row(2), row(1)]).token
    names = tuple(field.name for field in dataclasses.fields(RequestLogRow))
    assert names == COLUMN_NAMES


def test_a_full_spool_asks_for_backpressure_and_no_row_is_dropped(spool_path: Path) -> None:
    target = FakeTarget(down=True)
    sink = RequestLogSink(target, spool_path, dataclasses.replace(BY_FLUSH,
                                                                  max_spool_bytes=2_000))
    try:
        assert sink.saturated is None
        for i in range(20):
            sink.add(row(i))
        sink.flush(timeout=0.5)
        wait_until(lambda: sink.spool_depth == 20)
        assert sink.saturated is not None and "spool" in sink.saturated
        target.down = False  # ClickHouse is back: the spool drains and the worker may fetch
        assert sink.flush(timeout=10)
        assert sink.saturated is None and sorted(target.request_ids()) == sorted(
            f"req-{i}" for i in range(20))
    finally:
        sink.close()
