"""Versioned, idempotent DDL of the request log: `migrate(client, database)` brings a database up.

Applied versions are recorded in `<db>.schema_migrations`; a migration runs only when its version is
missing there, so applying twice is a no-op. Every statement is itself idempotent (IF NOT EXISTS,
OR REPLACE) because a crash between a statement and the version row reruns the whole migration, and
because two workers starting at once may both migrate (the ReplacingMergeTree collapses their rows).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.errors import ConfigError, StorageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # `{db}` is replaced by the quoted database name


# ORDER BY (model, request_id): for ReplacingMergeTree the sorting key IS the dedupe key, so it
# must be exactly a request's identity and nothing that changes when a request is retried or
# replayed (worker, partition, offset, consumed_at do). `model` leads because it has few values:
# it compresses well and lets per-model queries skip granules. Time-range pruning does not need
# created_at in the key: each part keeps a min/max index of the partition-key column created_at,
# so "last 15 minutes" skips whole parts. created_at is stamped by the client and travels in the
# record, so a replay lands in the same daily partition, which matters because duplicates only
# collapse within a partition.
# non_replicated_deduplication_window: a block retried with the same insert_deduplication_token
# is dropped at insert time (the default window is 0 = off for non-replicated tables); replays in
# new blocks are collapsed at merge time, and every analytics query reads FINAL so a duplicate
# never counts twice.
_REQUEST_LOG = """
CREATE TABLE IF NOT EXISTS {db}.request_log
(
    request_id String,
    model LowCardinality(String),
    model_version LowCardinality(String),
    task LowCardinality(String),
    status LowCardinality(String),
    error_code LowCardinality(String),
    priority Int32,
    `partition` UInt32,
    `offset` UInt64,
    worker LowCardinality(String),
    batch_size UInt32,
    tokens_in UInt32,
    tokens_out UInt32,
    created_at DateTime64(3),
    consumed_at DateTime64(3),
    batch_started_at DateTime64(3),
    inference_started_at DateTime64(3),
    completed_at DateTime64(3),
    kafka_wait_ms Float64,
    queue_wait_ms Float64,
    batch_wait_ms Float64,
    inference_ms Float64,
    total_ms Float64,
    time_to_first_token_ms Nullable(Float64),
    inserted_at DateTime64(3) DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMMDD(created_at)
ORDER BY (model, request_id)
SETTINGS non_replicated_deduplication_window = 1000
"""

# Parameterized views: `SELECT * FROM <db>.stage_latency(since_s=900)`. All read FINAL (dedupe).
_WINDOW = "created_at >= now64(3) - toIntervalSecond({since_s:UInt32})"

_THROUGHPUT = f"""
CREATE OR REPLACE VIEW {{db}}.throughput_per_minute AS
SELECT toStartOfMinute(completed_at) AS minute, model, count() AS requests,
       countIf(status = 'ok') AS ok, countIf(status = 'error') AS errors,
       countIf(status = 'expired') AS expired, countIf(status = 'rejected') AS rejected,
       sum(tokens_out) AS tokens_out
FROM {{db}}.request_log FINAL
WHERE {_WINDOW}
GROUP BY minute, model ORDER BY minute, model
"""

# Latency only of requests that ran (status ok): expired/failed ones have no real stage timings.
_STAGE_LATENCY = f"""
CREATE OR REPLACE VIEW {{db}}.stage_latency AS
SELECT model, s.2 AS stage, count(s.3) AS n, quantile(0.5)(s.3) AS p50_ms,
       quantile(0.95)(s.3) AS p95_ms, quantile(0.99)(s.3) AS p99_ms
FROM {{db}}.request_log FINAL
ARRAY JOIN [(1, 'kafka_wait', CAST(kafka_wait_ms, 'Nullable(Float64)')),
            (2, 'queue_wait', queue_wait_ms), (3, 'batch_wait', batch_wait_ms),
            (4, 'inference', inference_ms), (5, 'total', total_ms),
            (6, 'time_to_first_token', time_to_first_token_ms)] AS s
WHERE {_WINDOW} AND status = 'ok'
GROUP BY model, s.1, s.2 HAVING n > 0 ORDER BY model, s.1
"""

_STATUS_RATES = f"""
CREATE OR REPLACE VIEW {{db}}.status_rates AS
SELECT model, count() AS requests, countIf(status = 'ok') AS ok,
       countIf(status = 'error') AS errors, countIf(status = 'expired') AS expired,
       countIf(status = 'rejected') AS rejected, errors / requests AS error_rate,
       expired / requests AS expiry_rate, rejected / requests AS rejection_rate
FROM {{db}}.request_log FINAL
WHERE {_WINDOW}
GROUP BY model ORDER BY model
"""

# Each row carries the size of its batch, so a size-b batch leaves b rows: batches = rows / b.
_BATCH_SIZES = f"""
CREATE OR REPLACE VIEW {{db}}.batch_size_distribution AS
SELECT model, batch_size, count() AS requests, requests / batch_size AS batches,
       requests / sum(requests) OVER (PARTITION BY model) AS request_share
FROM {{db}}.request_log FINAL
WHERE {_WINDOW} AND batch_size > 0
GROUP BY model, batch_size ORDER BY model, batch_size
"""

# Exactly-once output is not exactly-once compute: what the redone computations cost.
_REPLAY_COST = f"""
CREATE OR REPLACE VIEW {{db}}.replay_cost AS
SELECT model, count() AS requests, countIf(attempt > 1) AS replayed,
       sum(attempt - 1) AS extra_computations, sum(compute_ms) AS total_compute_ms,
       sum((attempt - 1) * compute_ms) AS replay_compute_ms,
       replay_compute_ms / greatest(total_compute_ms + replay_compute_ms, 1e-9) AS replay_share
FROM {{db}}.request_log FINAL
WHERE {_WINDOW}
GROUP BY model ORDER BY model
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "database and request_log", ("CREATE DATABASE IF NOT EXISTS {db}", _REQUEST_LOG)),
    Migration(
        2,
        "analytics views (deduplicated with FINAL)",
        (_THROUGHPUT, _STAGE_LATENCY, _STATUS_RATES, _BATCH_SIZES),
    ),
    Migration(
        3,
        "replays as cost: attempt and compute share per request",
        ("ALTER TABLE {db}.request_log ADD COLUMN IF NOT EXISTS attempt UInt16 DEFAULT 1",
         "ALTER TABLE {db}.request_log ADD COLUMN IF NOT EXISTS compute_ms Float64 DEFAULT 0",
         _REPLAY_COST),
    ),
)

_BOOTSTRAP = (
    "CREATE DATABASE IF NOT EXISTS {db}",
    "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, description String, "
    "applied_at DateTime64(3) DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree(applied_at) ORDER BY version",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_database(database: str) -> str:
    """Backtick-quote a database name; only plain identifiers are accepted (no SQL injection)."""
    if not _IDENTIFIER.match(database):
        raise ConfigError(f"clickhouse_database must be a plain identifier, got {database!r}")
    return f"`{database}`"


def applied_versions(client: Client, database: str) -> set[int]:
    db = quote_database(database)
    rows = client.query(f"SELECT version FROM {db}.schema_migrations FINAL").result_rows
    return {int(row[0]) for row in rows}


def migrate(
    client: Client, database: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Apply the missing migrations in version order; return the versions applied by this call."""
    db = quote_database(database)
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ConfigError(f"migration versions must be unique and ascending, got {versions}")
    done: list[int] = []
    try:
        for statement in _BOOTSTRAP:
            client.command(statement.replace("{db}", db))
        applied = applied_versions(client, database)
        for migration in migrations:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                client.command(statement.replace("{db}", db))
            client.insert(
                f"{db}.schema_migrations",
                [[migration.version, migration.description]],
                column_names=["version", "description"],
            )
            logger.info("applied migration %d (%s)", migration.version, migration.description)
            done.append(migration.version)
    except ClickHouseError as exc:
        raise StorageError(f"migration failed in database {database}: {exc}") from exc
    return done
