"""Knobs of the request-log sink. ClickHouse likes few large inserts (>= 1,000 rows, ~1/s)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SinkOptions:
    block_rows: int = 1_000  # a block is sent once this many rows wait...
    flush_interval_s: float = 1.0  # ...or the oldest waited this long
    max_block_rows: int = 20_000  # after a stall, catch up in blocks up to this size
    max_buffered_rows: int = 100_000  # at this size add() spills the buffer to the spool
    max_attempts: int = 4  # inserts of one block (same token) before it is spooled
    backoff_s: float = 0.1  # doubled per retry, capped at max_backoff_s
    max_backoff_s: float = 2.0
    replay_interval_s: float = 5.0  # while degraded, how often the spool replay probes the target
    # At this spool size the sink asks the worker to stop fetching (backpressure): rows are
    # never dropped, the source waits until ClickHouse takes the spool back.
    max_spool_bytes: int = 512 * 1024 * 1024
