"""The ClickHouse target of the request-log sink: an `InsertFn` that reconnects via a factory."""

from __future__ import annotations

import logging

from clickhouse_connect.driver.client import Client

from streams.analytics.migrations import migrate, quote_database
from streams.analytics.sink.batching import RequestLogSink
from streams.analytics.sink.options import SinkOptions
from streams.analytics.sink.request_log import COLUMNS, Block, InsertFn
from streams.analytics.storage import ClientFactory, client_factory
from streams.config import Settings

logger = logging.getLogger(__name__)

_TYPES = dict(COLUMNS)


class ClickHouseInserter:
    """Inserts blocks through a client from `factory`; a failure drops the client to reconnect.

    Called only from the sink's thread, so the client (chDB or HTTP) lives on one thread.
    """

    def __init__(self, factory: ClientFactory, table: str) -> None:
        self._factory = factory
        self._table = table  # qualified, e.g. `streamserve`.request_log
        self._client: Client | None = None

    def __call__(self, block: Block) -> None:
        if self._client is None:
            self._client = self._factory()
        client = self._client
        try:
            client.insert(
                self._table,
                block.columns,
                column_names=list(block.names),
                column_type_names=[_TYPES[name] for name in block.names],
                column_oriented=True,
                settings={"insert_deduplication_token": block.token},
            )
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken client's close must not mask the insert error
                logger.debug("closing a failed ClickHouse client", exc_info=True)


def request_log_table(settings: Settings) -> str:
    return f"{quote_database(settings.clickhouse_database)}.request_log"


def open_request_log_sink(
    settings: Settings, name: str = "request_log", options: SinkOptions | None = None,
) -> RequestLogSink:
    """The worker's sink: target from the settings (chDB or server), spool at
    `<data_dir>/spool/<name>.jsonl` (one name per process: the spool is locked).

    ClickHouse may be down when a worker starts: the worker must serve anyway, so connecting
    and migrating happen lazily on the sink's thread, on every (re)connect (migrations are
    idempotent), and rows spool until they succeed."""
    factory = client_factory(settings)

    def connect_and_migrate() -> Client:
        client = factory()
        try:
            migrate(client, settings.clickhouse_database)
        except Exception:
            client.close()
            raise
        return client

    target: InsertFn = ClickHouseInserter(connect_and_migrate, request_log_table(settings))
    return RequestLogSink(target, settings.data_dir / "spool" / f"{name}.jsonl", options)
