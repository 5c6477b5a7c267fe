"""What a worker checks before it spends a minute loading models: Kafka answers, and the
request log's embedded chDB path is its own."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import IO

from streams.config import Settings
from streams.errors import ConfigError
from streams.kafka.broker_check import check_broker


def check_kafka(settings: Settings) -> None:
    """Raise `BrokerUnreachable` (one line: the address tried and how to start a broker)
    unless Kafka answers and the worker's consumer group has a coordinator."""
    asyncio.run(check_broker(settings, settings.consumer_group))


def claim_chdb_path(settings: Settings, worker_id: str) -> IO[str] | None:
    """Hold `<chdb path>.owner` for the worker's lifetime; refuse when another worker has it.

    chDB allows one process per path and the sink opens it lazily, at its first insert, so two
    workers started in one directory would both start, and the later one would spool forever
    behind the other's lock. The claim is taken at start instead: the second worker stops at
    once and says why. The file is released when the process exits, however it exits.
    Returns the open claim (keep it referenced), or None when no embedded chDB is used.
    """
    if not settings.request_log or settings.clickhouse_url:
        return None
    path = settings.chdb_path
    claim_path = path.with_name(f"{path.name}.owner")
    claim_path.parent.mkdir(parents=True, exist_ok=True)
    claim = claim_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.seek(0)
        holder = claim.read().strip() or "another process"
        claim.close()
        raise ConfigError(_refusal(path, holder)) from None
    claim.seek(0)
    claim.truncate()
    claim.write(f"worker {worker_id} (pid {os.getpid()})\n")
    claim.flush()
    return claim


def _refusal(path: Path, holder: str) -> str:
    return (f"the request log's chDB path {path} belongs to {holder}; chDB allows one process "
            "per path. Give this worker its own STREAMSERVE_DATA_DIR (or "
            "STREAMSERVE_CLICKHOUSE_CHDB_PATH), start several with `streamserve up --workers N` "
            "(each gets its own), share a server with STREAMSERVE_CLICKHOUSE_URL, or set "
            "STREAMSERVE_REQUEST_LOG=false")
