"""Measured throughput at N workers: from a bench results JSON, or from the request log.

- The bench's scaling stage (bench/scaling.py) drains bursts with 1 and 2 workers (`by_workers`
  when it measured more counts): requests/s per worker count per model, the clean source — a
  burst keeps every worker busy.
- The request log: per minute, how many distinct workers answered and requests / (last − first
  completion); the peak minute per worker count. A minute without a backlog measures demand,
  not capacity, so prefer minutes of a burst (or the bench).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from streams.analytics.capacity.laws import Point
from streams.analytics.migrations import quote_database
from streams.errors import ConfigError

BENCH_RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
_BENCH_COUNTS = {"one_worker": 1, "two_workers": 2}


@dataclass(frozen=True, slots=True)
class Measured:
    points: tuple[Point, ...]  # sorted by worker count
    source: str  # where they come from, for the report
    mix: dict[str, float]  # model -> share of the requests the points were measured with


@dataclass(frozen=True, slots=True)
class MinuteLoad:
    minute: datetime
    workers: int  # distinct workers that answered in this minute
    requests: int
    span_s: float  # first to last completion in the minute


def bench_points(data: dict[str, Any], model: str) -> list[Point]:
    """requests/s per worker count of `model` in a bench results dict (its scaling stage)."""
    stage = data.get("scaling") or {}
    measured = stage.get(model)
    if not isinstance(measured, dict):
        return []
    figures = dict(measured.get("by_workers") or {})
    for key, workers in _BENCH_COUNTS.items():
        if key in measured:
            figures.setdefault(str(workers), measured[key])
    points = [Point(int(n), float(fig["median"])) for n, fig in figures.items()
              if isinstance(fig, dict) and fig.get("median")]
    return sorted(points, key=lambda p: p.workers)


def newest_bench(directory: Path, model: str) -> Path:
    """The newest results JSON whose scaling stage measured `model`."""
    for path in sorted(directory.glob("*.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and len(bench_points(data, model)) >= 2:
            return path
    raise ConfigError(f"no bench results in {directory} with a scaling stage for {model!r} "
                      "(run `streamserve bench --quick`)")


def from_bench(path: Path, model: str) -> Measured:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read bench results {path}: {exc}") from exc
    points = bench_points(data, model)
    if not points:
        known = sorted(k for k, v in (data.get("scaling") or {}).items() if isinstance(v, dict))
        raise ConfigError(f"{path}: no scaling stage for model {model!r} (measured: "
                          f"{', '.join(known) or 'none'})")
    return Measured(tuple(points), f"{path.name}, scaling stage", {model: 1.0})


def peak_rates(minutes: Sequence[MinuteLoad]) -> dict[int, float]:
    """Worker count -> best requests/s of a minute with that many workers (a span < 1 s
    counts as 1 s). The peak, not the mean: quiet minutes show demand, not capacity."""
    peaks: dict[int, float] = {}
    for m in minutes:
        rate = m.requests / max(1.0, m.span_s)
        peaks[m.workers] = max(peaks.get(m.workers, 0.0), rate)
    return peaks


def query_minutes(client: Client, database: str, since: timedelta) -> list[MinuteLoad]:
    sql = (
        "SELECT toStartOfMinute(completed_at) AS minute, uniqExact(worker), count(), "
        "dateDiff('millisecond', min(completed_at), max(completed_at)) / 1000 "
        f"FROM {_log(database)} WHERE {_window(since)} AND status = 'ok' "
        "GROUP BY minute ORDER BY minute"
    )
    return [MinuteLoad(r[0], int(r[1]), int(r[2]), float(r[3]))
            for r in client.query(sql).result_rows]


def query_mix(client: Client, database: str, since: timedelta) -> dict[str, float]:
    sql = (f"SELECT model, count() FROM {_log(database)} WHERE {_window(since)} "
           "AND status = 'ok' GROUP BY model ORDER BY model")
    counts = {str(r[0]): int(r[1]) for r in client.query(sql).result_rows}
    total = sum(counts.values())
    return {model: n / total for model, n in counts.items()} if total else {}


def from_request_log(client: Client, database: str, since: timedelta) -> Measured:
    peaks = peak_rates(query_minutes(client, database, since))
    points = tuple(Point(n, rate) for n, rate in sorted(peaks.items()))
    return Measured(points, f"request log, last {since}, peak minute per worker count",
                    query_mix(client, database, since))


def _log(database: str) -> str:
    return f"{quote_database(database)}.request_log FINAL"


def _window(since: timedelta) -> str:
    return f"created_at >= now64(3) - toIntervalSecond({max(1, int(since.total_seconds()))})"
