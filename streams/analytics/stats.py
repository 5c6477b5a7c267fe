"""Saved analytics queries over the request log, and `stats_report` behind `streamserve stats`.

Each query reads one of the parameterized views of migration 2, which read `request_log FINAL`, so
a request logged twice (retry, replay after a rebalance) counts once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from streams.analytics.migrations import migrate, quote_database
from streams.config import Settings
from streams.errors import ConfigError

DEFAULT_DATABASE = "streamserve"


@dataclass(frozen=True, slots=True)
class Throughput:
    minute: datetime
    model: str
    requests: int
    ok: int
    errors: int
    expired: int
    rejected: int
    tokens_out: int


@dataclass(frozen=True, slots=True)
class StageLatency:
    model: str
    stage: str  # kafka_wait, queue_wait, batch_wait, inference, total, time_to_first_token
    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class StatusRates:
    model: str
    requests: int
    ok: int
    errors: int
    expired: int
    rejected: int
    error_rate: float
    expiry_rate: float
    rejection_rate: float


@dataclass(frozen=True, slots=True)
class BatchSizes:
    model: str
    batch_size: int
    requests: int
    batches: float
    request_share: float


@dataclass(frozen=True, slots=True)
class ReplayCost:
    model: str
    requests: int
    replayed: int  # requests computed more than once
    extra_computations: int
    total_compute_ms: float  # compute of the answers delivered
    replay_compute_ms: float
    replay_share: float  # of all compute, what went to computations that were redone


Row = TypeVar("Row", Throughput, StageLatency, StatusRates, BatchSizes, ReplayCost)


def _view(client: Client, database: str, view: str, since: timedelta, kind: type[Row]) -> list[Row]:
    names = [field.name for field in fields(kind)]
    seconds = max(1, int(since.total_seconds()))  # an int: safe to inline as the view argument
    sql = f"SELECT {', '.join(names)} FROM {quote_database(database)}.{view}(since_s={seconds})"
    return [kind(*row) for row in client.query(sql).result_rows]


def throughput_per_minute(
    client: Client, since: timedelta, database: str = DEFAULT_DATABASE
) -> list[Throughput]:
    """Requests answered per minute (by completion time) and model, with their statuses."""
    return _view(client, database, "throughput_per_minute", since, Throughput)


def stage_latency(
    client: Client, since: timedelta, database: str = DEFAULT_DATABASE
) -> list[StageLatency]:
    """p50/p95/p99 of each stage by model, over requests that ran (status ok)."""
    return _view(client, database, "stage_latency", since, StageLatency)


def status_rates(
    client: Client, since: timedelta, database: str = DEFAULT_DATABASE
) -> list[StatusRates]:
    """Error, expiry and rejection rates by model."""
    return _view(client, database, "status_rates", since, StatusRates)


def batch_sizes(
    client: Client, since: timedelta, database: str = DEFAULT_DATABASE
) -> list[BatchSizes]:
    """How many requests (and batches) ran at each batch size, by model."""
    return _view(client, database, "batch_size_distribution", since, BatchSizes)


def replay_cost(client: Client, since: timedelta,
                database: str = DEFAULT_DATABASE) -> list[ReplayCost]:
    """Requests computed more than once (a hand-over, a fenced transaction) and the compute
    time the earlier computations cost, by model."""
    return _view(client, database, "replay_cost", since, ReplayCost)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> timedelta:
    """'90s', '15m', '2h', '1d' -> timedelta (the CLI's --since)."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"--since wants a duration like 90s, 15m, 2h or 1d, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def _cell(value: Any, name: str) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.2%}" if name.endswith(("_rate", "_share")) else f"{value:.2f}"
    return str(value)


def format_table(rows: Sequence[Any], title: str = "") -> str:
    """Plain-text table of dataclass rows, one column per field, right-aligned numbers."""
    header = f"{title}\n" if title else ""
    if not rows:
        return f"{header}  (no requests in this window)"
    names = [field.name for field in fields(rows[0])]
    cells = [[_cell(getattr(row, name), name) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    numeric = [not isinstance(getattr(rows[0], name), str) for name in names]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if num else value.ljust(width)
            for value, width, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([header + line(names), rule, *(line(values) for values in cells)])


def stats_report(settings: Settings, since: timedelta, plot_path: Path | None = None) -> str:
    """The text of `streamserve stats`: five tables; with `plot_path`, a latency PNG as well."""
    from streams.analytics.plots import (
        plot_latency_percentiles,  # matplotlib only when a plot is asked
    )
    from streams.analytics.storage import connect

    database = settings.clickhouse_database
    client = connect(settings)
    try:
        migrate(client, database)  # idempotent: the views exist even before the first worker ran
        latency = stage_latency(client, since, database)
        sections = [
            format_table(status_rates(client, since, database), "Requests by status"),
            format_table(latency, "Latency by stage (ms, requests with status ok)"),
            format_table(batch_sizes(client, since, database), "Batch sizes"),
            format_table(throughput_per_minute(client, since, database), "Throughput per minute"),
            format_table(replay_cost(client, since, database),
                         "Replays (computed again after a hand-over or a fenced transaction)"),
        ]
    finally:
        client.close()
    if plot_path is not None:
        plot_latency_percentiles(latency, plot_path)
        sections.append(f"latency plot written to {plot_path}")
    return f"last {since}\n\n" + "\n\n".join(sections)
