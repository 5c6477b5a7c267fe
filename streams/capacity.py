"""`streamserve plan`: how much more workers would help, from the stage times in the request log.

The job is "a request in a backlog". Its time splits into (means over ok requests):
- parallel — waiting for a worker: Kafka queueing (kafka_wait minus the transport floor, the
  5th percentile of kafka_wait) and the lane's queue (queue_wait). With N workers sharing the
  backlog, the work ahead of a request is split N ways, so this part shrinks as 1/N.
- serial — what no extra worker shortens: broker transport (the floor), the batching timer
  (batch_wait; with more workers batches fill *slower*), the request's own batch compute
  (inference: a batch does not run faster because another process exists) and the rest
  (decode, publish: total minus the four stages).
Assumptions, stated: the workers do not share a saturated resource (cores, GPU, broker); N is
capped by the partition count (a group uses at most one consumer per partition).

Amdahl, fixed backlog: S(N) = 1 / ((1 − p1) + p1 / N), p1 = parallel fraction on ONE worker.
Gustafson, backlog growing with N: S(N) = (1 − pk) + pk·N, pk = parallel fraction measured on
the system as it ran. When the log was written by k workers (mean distinct workers per minute,
weighted by requests), its parallel part P was already split k ways, so one worker would see
k·P: p1 = pk·k / ((1 − pk) + pk·k).
Measured: peak requests/s per minute, grouped by how many distinct workers answered in that
minute; a speed-up is only "measured" when the log holds at least two worker counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from streams.config import Settings
from streams.errors import ConfigError
from streams.migrations import migrate, quote_database


@dataclass(frozen=True, slots=True)
class StageMeans:
    requests: int
    kafka_wait_ms: float
    kafka_floor_ms: float  # p5 of kafka_wait: transport without queueing
    batch_wait_ms: float
    queue_wait_ms: float
    inference_ms: float
    total_ms: float

    @property
    def parallel_ms(self) -> float:
        return max(0.0, self.kafka_wait_ms - self.kafka_floor_ms) + self.queue_wait_ms

    @property
    def serial_ms(self) -> float:
        staged = self.kafka_wait_ms + self.batch_wait_ms + self.queue_wait_ms + self.inference_ms
        rest = max(0.0, self.total_ms - staged)
        return self.kafka_floor_ms + self.batch_wait_ms + self.inference_ms + rest

    @property
    def parallel_fraction(self) -> float:
        whole = self.parallel_ms + self.serial_ms
        return self.parallel_ms / whole if whole > 0 else 0.0


@dataclass(frozen=True, slots=True)
class MinuteLoad:
    minute: datetime
    workers: int  # distinct workers that answered in this minute
    requests: int
    span_s: float  # first to last completion in the minute


def amdahl(p: float, n: float) -> float:
    return 1.0 / ((1.0 - p) + p / n)


def gustafson(p: float, n: float) -> float:
    return (1.0 - p) + p * n


def one_worker_fraction(p_k: float, k: float) -> float:
    """Amdahl's p on one worker from the fraction measured with k workers."""
    return p_k * k / ((1.0 - p_k) + p_k * k) if p_k > 0 else 0.0


def workers_measured(minutes: Sequence[MinuteLoad]) -> float:
    served = sum(m.requests for m in minutes)
    return sum(m.workers * m.requests for m in minutes) / served if served else 1.0


def peak_rates(minutes: Sequence[MinuteLoad]) -> dict[int, float]:
    """Worker count -> best requests/s of a minute with that many workers (a span < 1 s
    counts as 1 s). The peak, not the mean: quiet minutes show demand, not capacity."""
    peaks: dict[int, float] = {}
    for m in minutes:
        rate = m.requests / max(1.0, m.span_s)
        peaks[m.workers] = max(peaks.get(m.workers, 0.0), rate)
    return peaks


def query_stages(client: Client, database: str, since: timedelta) -> StageMeans:
    sql = (
        "SELECT count(), avg(kafka_wait_ms), quantile(0.05)(kafka_wait_ms), avg(batch_wait_ms), "
        f"avg(queue_wait_ms), avg(inference_ms), avg(total_ms) FROM {_log(database)} "
        f"WHERE {_window(since)} AND status = 'ok'"
    )
    row = client.query(sql).result_rows[0]
    return StageMeans(int(row[0]), *(float(v or 0.0) for v in row[1:]))


def query_minutes(client: Client, database: str, since: timedelta) -> list[MinuteLoad]:
    sql = (
        "SELECT toStartOfMinute(completed_at) AS minute, uniqExact(worker), count(), "
        "dateDiff('millisecond', min(completed_at), max(completed_at)) / 1000 "
        f"FROM {_log(database)} WHERE {_window(since)} GROUP BY minute ORDER BY minute"
    )
    return [MinuteLoad(r[0], int(r[1]), int(r[2]), float(r[3]))
            for r in client.query(sql).result_rows]


def _log(database: str) -> str:
    return f"{quote_database(database)}.request_log FINAL"


def _window(since: timedelta) -> str:
    return f"created_at >= now64(3) - toIntervalSecond({max(1, int(since.total_seconds()))})"


def plan_table(stages: StageMeans, minutes: Sequence[MinuteLoad], counts: Sequence[int],
               partitions: int) -> str:
    p_k = stages.parallel_fraction
    k = workers_measured(minutes)
    p_1 = one_worker_fraction(p_k, k)
    peaks = peak_rates(minutes)
    base = min(peaks) if peaks else None
    lines = [
        f"{stages.requests} ok requests; mean ms: kafka_wait {stages.kafka_wait_ms:.1f} "
        f"(transport floor {stages.kafka_floor_ms:.1f}), batch_wait {stages.batch_wait_ms:.1f}, "
        f"queue_wait {stages.queue_wait_ms:.1f}, inference {stages.inference_ms:.1f}, "
        f"total {stages.total_ms:.1f}",
        f"serial {stages.serial_ms:.1f} ms, parallel {stages.parallel_ms:.1f} ms per request, "
        f"logged with {k:.2f} workers: serial fraction {1 - p_k:.3f} (Gustafson p = {p_k:.3f});"
        f" on one worker {1 - p_1:.3f} (Amdahl p = {p_1:.3f})",
        f"N capped at {partitions} partitions",
        "",
        f"{'N':>4}  {'Amdahl':>8}  {'Gustafson':>9}  measured",
    ]
    for n in counts:
        eff = min(n, partitions)
        measured = "not measured"
        if base is not None and len(peaks) > 1 and n in peaks:
            measured = f"{peaks[n] / peaks[base]:.2f}x vs {base} worker(s) ({peaks[n]:.1f} req/s)"
        lines.append(f"{n:>4}  {amdahl(p_1, eff):>7.2f}x  {gustafson(p_k, eff):>8.2f}x  "
                     f"{measured}")
    return "\n".join(lines)


def parse_counts(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8] (the CLI's --workers)."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise ConfigError(f"--workers wants worker counts like 1,2,4,8, got {text!r}")
    return counts


def plan_report(settings: Settings, since: timedelta, counts: Sequence[int]) -> str:
    from streams.storage import connect

    client = connect(settings)
    try:
        migrate(client, settings.clickhouse_database)  # idempotent: an empty store has no rows
        stages = query_stages(client, settings.clickhouse_database, since)
        minutes = query_minutes(client, settings.clickhouse_database, since)
    finally:
        client.close()
    if stages.requests == 0:
        return f"no ok requests in the request log in the last {since}"
    return f"last {since}\n" + plan_table(stages, minutes, counts, settings.topic_partitions)
