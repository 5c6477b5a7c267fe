"""One request-log row per request, and the column blocks the ClickHouse sink inserts and spools.

Timestamps are epoch seconds as floats (what `time.time()` gives the worker on its hot path); they
become DateTime64(3) ticks (integer milliseconds) only when a block is built, off the event loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_EXPIRED = "expired"
STATUS_REJECTED = "rejected"


@dataclass(slots=True)
class RequestLogRow:
    """The `request_log` columns except `inserted_at` (a server default); required ones first.

    Stage timestamps a request never reached (an expired request has no inference) stay 0.0.
    """

    request_id: str
    model: str
    status: str  # STATUS_*: the result's status enum
    created_at: float  # epoch seconds, stamped by the client; also the partition key
    completed_at: float
    model_version: str = ""
    task: str = ""
    error_code: str = ""
    priority: int = 0
    partition: int = 0
    offset: int = 0
    worker: str = ""
    batch_size: int = 1
    tokens_in: int = 0
    tokens_out: int = 0
    consumed_at: float = 0.0
    batch_started_at: float = 0.0
    inference_started_at: float = 0.0
    kafka_wait_ms: float = 0.0
    queue_wait_ms: float = 0.0
    batch_wait_ms: float = 0.0
    inference_ms: float = 0.0
    total_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    # Replays as cost: how many times this request was computed (earlier computations dropped
    # at a hand-over or a fenced transaction, then redone), and its share of its batch's
    # compute time (inference_ms / batch_size).
    attempt: int = 1
    compute_ms: float = 0.0


# (name, ClickHouse type) as created by migration 1; passing the types to insert() saves the
# DESCRIBE round trip clickhouse-connect would otherwise make for every block.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "String"),
    ("model", "LowCardinality(String)"),
    ("status", "LowCardinality(String)"),
    ("created_at", "DateTime64(3)"),
    ("completed_at", "DateTime64(3)"),
    ("model_version", "LowCardinality(String)"),
    ("task", "LowCardinality(String)"),
    ("error_code", "LowCardinality(String)"),
    ("priority", "Int32"),
    ("partition", "UInt32"),
    ("offset", "UInt64"),
    ("worker", "LowCardinality(String)"),
    ("batch_size", "UInt32"),
    ("tokens_in", "UInt32"),
    ("tokens_out", "UInt32"),
    ("consumed_at", "DateTime64(3)"),
    ("batch_started_at", "DateTime64(3)"),
    ("inference_started_at", "DateTime64(3)"),
    ("kafka_wait_ms", "Float64"),
    ("queue_wait_ms", "Float64"),
    ("batch_wait_ms", "Float64"),
    ("inference_ms", "Float64"),
    ("total_ms", "Float64"),
    ("time_to_first_token_ms", "Nullable(Float64)"),
    ("attempt", "UInt16"),  # migration 3
    ("compute_ms", "Float64"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
COLUMN_TYPES: tuple[str, ...] = tuple(kind for _, kind in COLUMNS)
_TIMESTAMPS = frozenset(name for name, kind in COLUMNS if kind.startswith("DateTime64"))


@dataclass(frozen=True, slots=True)
class Block:
    """Column-oriented rows plus the insert_deduplication_token every retry and replay reuses."""

    token: str
    names: tuple[str, ...]
    columns: list[list[Any]]

    @property
    def rows(self) -> int:
        return len(self.columns[0]) if self.columns else 0


InsertFn = Callable[[Block], object]  # a sink's target: inserts one block or raises


def block_token(request_ids: Sequence[str]) -> str:
    """Deterministic token of a block: the same rows always carry the same token."""
    digest = hashlib.sha256("\n".join(request_ids).encode()).hexdigest()
    return f"rl-{len(request_ids)}-{digest[:40]}"


def to_block(rows: Sequence[RequestLogRow]) -> Block:
    columns: list[list[Any]] = []
    for name in COLUMN_NAMES:
        if name in _TIMESTAMPS:
            # int values are written as raw DateTime64(3) ticks by clickhouse-connect
            columns.append([round(getattr(row, name) * 1000) for row in rows])
        else:
            columns.append([getattr(row, name) for row in rows])
    return Block(token=block_token(columns[0]), names=COLUMN_NAMES, columns=columns)
