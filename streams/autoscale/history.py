"""Per-model cost and traffic mix from the request log, for when no worker is up yet.

The request log has the exact cost: each row carries its batch's compute time and size, so
avg(inference_ms / batch_size) over requests = Σ batch time / Σ requests (estimate.py can only
approximate it from histograms).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.analytics.migrations import quote_database
from streams.config import Settings
from streams.errors import StreamserveError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class History:
    cost_s: dict[str, float]  # model -> model-seconds per request that ran
    mix: dict[str, float]  # model -> share of all requests
    requests: int


def query_history(client: Client, database: str, since_s: int) -> History:
    sql = (
        "SELECT model, count() AS n, countIf(status = 'ok') AS ran, "
        "sumIf(inference_ms / greatest(batch_size, 1), status = 'ok') AS busy_ms "
        f"FROM {quote_database(database)}.request_log FINAL "
        f"WHERE created_at >= now64(3) - toIntervalSecond({int(since_s)}) GROUP BY model"
    )
    rows = client.query(sql).result_rows
    total = sum(int(row[1]) for row in rows)
    cost = {str(m): float(busy) / 1000 / int(ran) for m, _, ran, busy in rows if int(ran) > 0}
    mix = {str(m): int(n) / total for m, n, _, _ in rows} if total else {}
    return History(cost, mix, total)


def read_history(settings: Settings, since_s: int = 3600) -> History | None:
    """The last hour of the configured request log; None when there is none or it is locked.

    Embedded chDB is only read when its path already exists (never create an empty store),
    and is closed at once: chDB allows one process per path, and a worker may want it.
    """
    from streams.analytics.storage import connect

    if not settings.clickhouse_url and not settings.chdb_path.exists():
        return None
    try:
        client = connect(settings)
    except StreamserveError as exc:
        logger.info("no request-log history: %s", exc)
        return None
    try:
        history = query_history(client, settings.clickhouse_database, since_s)
    except (ClickHouseError, StreamserveError) as exc:
        logger.info("no request-log history: %s", exc)
        return None
    finally:
        client.close()
    return history if history.requests else None
