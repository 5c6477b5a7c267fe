"""What can go wrong inside a partition's transaction, and how each record's failure is read.

A producer is **fenced** when another producer initialised the same transactional id (a new
owner of the partition) or the broker no longer knows ours: nothing of the transaction becomes
visible, and the producer cannot be used again. Any other failure aborts the transaction; the
records that failed on their own (too large, a refusing reply topic) are found from their
futures, or from `send()` having raised, and repaired before the retry.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
    TransactionCoordinatorFenced,
    UnknownProducerId,
)

from streams.protocol.fit import Outgoing

FENCED = (ProducerFenced, InvalidProducerEpoch, TransactionCoordinatorFenced,
          InvalidProducerIdMapping, UnknownProducerId)


class RecordRefused(Exception):
    """A record of the transaction was refused by send() itself: abort, repair, retry."""


async def send_in_transaction(producer: AIOKafkaProducer, record: Outgoing
                ) -> asyncio.Future[Any] | BaseException:
    """Queue `record` in the open transaction; a record refused at once is returned as its
    error (nothing was queued, the transaction goes on and is aborted before its commit)."""
    try:
        future: asyncio.Future[Any] = await producer.send(
            record.topic, record.value, key=record.key, headers=record.headers or None)
    except asyncio.CancelledError:
        raise
    except FENCED:
        raise
    except Exception as exc:  # noqa: BLE001 - classified by the abort
        return exc
    return future


def refused_records(sent: list[tuple[int, Outgoing, asyncio.Future[Any] | BaseException]]
                     ) -> list[tuple[int, Outgoing, BaseException]]:
    """The records of an aborted transaction that failed on their own, with their errors."""
    failed = []
    for offset, record, item in sent:
        if isinstance(item, BaseException):
            failed.append((offset, record, item))
        elif item.done() and not item.cancelled() and item.exception() is not None:
            error = item.exception()
            assert error is not None
            failed.append((offset, record, error))
    return failed
