"""Batched request-log writer: `add()` on the event loop, inserts in blocks on a background thread.

Delivery: a block is formed when >= `block_rows` rows wait or the oldest waited `flush_interval_s`;
it is inserted with a deterministic insert_deduplication_token and retried with the SAME token
(bounded exponential backoff). When the retries are spent the block goes to the local spool and the
sink turns "degraded": new blocks go straight to the spool and every `replay_interval_s` a replay
probes the target; the first replay that succeeds drains the spool and ends the degraded state.
Memory is bounded: at `max_buffered_rows` (reached only when the thread hangs inside an insert)
`add()` spills the buffer to the spool itself, trading one pause of the caller for bounded memory.
Counters (`rows_written`, `insert_errors`, `spool_depth`) are plain attributes the metrics read.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from streams.analytics.sink.options import SinkOptions
from streams.analytics.sink.request_log import Block, InsertFn, RequestLogRow, to_block
from streams.analytics.sink.spool import Spool
from streams.errors import StorageError

logger = logging.getLogger(__name__)


class RequestLogSink:
    def __init__(self, insert: InsertFn, spool_path: Path, options: SinkOptions | None = None):
        self._insert = insert
        self._spool = Spool(spool_path)
        self._opt = opt = options or SinkOptions()
        self._max_block_rows = max(opt.block_rows, opt.max_block_rows)
        self._cond = threading.Condition()
        self._buf: list[RequestLogRow] = []
        self._oldest = 0.0  # monotonic time the oldest buffered row arrived
        self._added = self._handled = 0  # rows ever added / rows written or spooled
        self._flushers, self._closing, self._closed = 0, False, False  # flushers: waiting flush()es
        self._degraded = self._spool.depth > 0  # spool left by an earlier run: replay it first
        self._next_replay = 0.0  # monotonic time of the next spool replay
        self.rows_written = self.insert_errors = self.rows_spooled = 0
        self._thread = threading.Thread(target=self._run, name="request-log-sink", daemon=True)
        self._thread.start()

    @property
    def spool_depth(self) -> int:  # rows waiting in the spool file
        return self._spool.depth

    @property
    def buffered_rows(self) -> int:  # rows waiting in memory
        return len(self._buf)

    @property
    def alive(self) -> bool:
        """False when the insert thread died: rows would pile up in memory."""
        return self._thread.is_alive() or self._closed

    @property
    def saturated(self) -> str | None:
        """Why the worker should stop fetching (the spool is full), or None."""
        size = self._spool.size_bytes if self._spool.depth else 0
        if size >= self._opt.max_spool_bytes:
            return (f"request-log spool {self._spool.path} holds {size} bytes "
                    f"(cap {self._opt.max_spool_bytes}); ClickHouse is not taking rows")
        return None

    def add(self, row: RequestLogRow) -> None:
        """Queue one row; never blocks on ClickHouse. Safe from the event loop."""
        with self._cond:
            if self._closed:
                raise StorageError("the request-log sink is closed")
            if not self._buf:
                self._oldest = time.monotonic()
            self._buf.append(row)
            self._added += 1
            size = len(self._buf)
            if size == self._opt.block_rows:
                self._cond.notify_all()
            if size < self._opt.max_buffered_rows:
                return
            rows, self._buf = self._buf, []
        self._spill(rows)

    def set_insert(self, insert: InsertFn) -> InsertFn:
        """Point the sink at another target (e.g. after reconfiguring); returns the previous one."""
        with self._cond:
            previous, self._insert = self._insert, insert
            self._next_replay = 0.0  # probe the new target now
            self._cond.notify_all()
        return previous

    def flush(self, timeout: float | None = None) -> bool:
        """Push out every row added so far and replay the spool; True once all are in ClickHouse."""
        with self._cond:
            target = self._added
            self._flushers, self._next_replay = self._flushers + 1, 0.0
            self._cond.notify_all()

            def done() -> bool:
                return self._handled >= target and self._spool.depth == 0

            try:
                self._cond.wait_for(lambda: done() or not self._thread.is_alive(), timeout)
                return done()
            finally:
                self._flushers -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, spool what ClickHouse did not take, stop the thread, close the target."""
        if self._closed:
            return self._spool.depth == 0
        ok = self.flush(timeout)
        with self._cond:
            self._closing = self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("request-log sink thread stuck in an insert; spooling its buffer")
        with self._cond:
            rows, self._buf = self._buf, []
        self._spill(rows)
        self._spool.close()
        if callable(closer := getattr(self._insert, "close", None)):
            closer()  # e.g. ClickHouseInserter: release its client (and the chDB engine)
        return ok and self._spool.depth == 0

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._has_work, timeout=self._opt.flush_interval_s)
                if self._closing:
                    return  # close() spools the rest
                cut = self._max_block_rows
                rows, self._buf = self._buf[:cut], self._buf[cut:]
                self._oldest = time.monotonic()
                replay_due = self._spool.depth > 0 and time.monotonic() >= self._next_replay
            try:
                if replay_due:
                    self._replay()
                if rows:
                    self._deliver(to_block(rows))
            except Exception:  # a broken spool must not stop the thread: keep the rows, retry later
                logger.exception("request-log sink: keeping %d rows in memory", len(rows))
                with self._cond:
                    self._buf[:0] = rows
                    self._cond.wait(self._opt.flush_interval_s)
            with self._cond:
                self._cond.notify_all()  # wake flush() waiters

    def _has_work(self) -> bool:
        replay = not self._degraded or time.monotonic() >= self._next_replay
        if self._closing or (self._spool.depth > 0 and replay):
            return True
        size = len(self._buf)
        age = time.monotonic() - self._oldest
        return size >= self._opt.block_rows or (
            size > 0 and (self._flushers > 0 or age >= self._opt.flush_interval_s)
        )

    def _deliver(self, block: Block) -> None:
        opt = self._opt
        for attempt in range(0 if self._degraded else opt.max_attempts):
            if self._try_insert(block):
                self._count_handled(block.rows)
                return
            backoff = min(opt.backoff_s * 2**attempt, opt.max_backoff_s)
            if attempt + 1 < opt.max_attempts and not self._pause(backoff):
                break
        self._degraded, self._next_replay = True, time.monotonic() + opt.replay_interval_s
        self._spool_blocks([block])

    def _try_insert(self, block: Block) -> bool:
        try:
            self._insert(block)
        except Exception as exc:  # noqa: BLE001 - any failure of the target: retry, then spool
            self.insert_errors += 1
            logger.warning("request-log insert of %d rows failed: %s", block.rows, exc)
            return False
        self.rows_written += block.rows
        return True

    def _pause(self, seconds: float) -> bool:
        """Back off before a retry; False when close() interrupts (then the block is spooled)."""
        with self._cond:
            return not self._cond.wait_for(lambda: self._closing, seconds)

    def _replay(self) -> None:
        offset = rows = 0
        for end, block in self._spool.replay():
            if not self._try_insert(block):
                self._next_replay = time.monotonic() + self._opt.replay_interval_s
                break
            offset, rows = end, rows + block.rows
        else:
            self._degraded = False
        if offset:
            self._spool.drop_prefix(offset, rows)

    def _spill(self, rows: list[RequestLogRow]) -> None:
        step = self._max_block_rows
        self._spool_blocks([to_block(rows[i : i + step]) for i in range(0, len(rows), step)])

    def _spool_blocks(self, blocks: list[Block]) -> None:
        if blocks:
            self._spool.append(blocks)  # durable (fsync) before the rows count as handled
            self._count_handled(sum(block.rows for block in blocks), spooled=True)

    def _count_handled(self, rows: int, spooled: bool = False) -> None:
        with self._cond:  # add() may spill on its own thread: counters change under the lock
            self._handled += rows
            self.rows_spooled += rows if spooled else 0
            self._cond.notify_all()
