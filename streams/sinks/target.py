"""The ClickHouse target of the request-log sink: an `InsertFn` that reconnects via a factory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streams.sinks.request_log import COLUMNS, Block

logger = logging.getLogger(__name__)

_TYPES = dict(COLUMNS)

InsertFn = Callable[[Block], object]  # the sink's target: inserts one block or raises


class ClickHouseInserter:
    """Inserts blocks through a client from `factory`; a failure drops the client to reconnect.

    Called only from the sink's thread, so the client (chDB or HTTP) lives on one thread.
    """

    def __init__(self, factory: Callable[[], Any], table: str) -> None:
        self._factory = factory
        self._table = table  # qualified, e.g. `streamserve`.request_log
        self._client: Any = None

    def __call__(self, block: Block) -> None:
        if self._client is None:
            self._client = self._factory()
        try:
            self._client.insert(
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
