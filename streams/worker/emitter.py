"""Publishes results and dead letters, and marks a record finished only once Kafka has it.

A record's offset becomes committable when every record it produced (its result, its DLQ copy)
is acknowledged by all in-sync replicas. A send that fails after the producer's own retries
leaves the offset uncommitted and stops the worker: the record is redelivered, never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.codec import RecordCodec
from streams.worker.dlq import DeadLetter
from streams.worker.jobs import Source
from streams.worker.offsets import OffsetTracker

logger = logging.getLogger(__name__)

TP = Any  # aiokafka.TopicPartition
OnSent = Callable[[], None]


class Emitter:
    def __init__(self, producer: AIOKafkaProducer, codec: RecordCodec,
                 tracker: OffsetTracker[TP], results_topic: str, dlq_topic: str,
                 on_fatal: Callable[[BaseException], None], chunk_codec: RecordCodec) -> None:
        self._producer = producer
        self._codec = codec
        self._tracker = tracker
        self._results_topic = results_topic
        self._dlq_topic = dlq_topic
        self._on_fatal = on_fatal
        self._chunk_codec = chunk_codec
        self._unacked: set[asyncio.Future[Any]] = set()

    async def result(self, result: dict[str, Any], source: Source,
                     reply_topic: str | None = None, on_sent: OnSent | None = None) -> None:
        """Publish one result (key = request id) for the record at `source`."""
        future = await self._producer.send(
            reply_topic or self._results_topic, self._codec.encode(result),
            key=result["request_id"].encode())
        self._track(future, source, on_sent)

    async def chunk(self, chunk: dict[str, Any], topic: str) -> asyncio.Future[Any]:
        """Publish one token chunk (key = request id: one request's chunks share a partition,
        so they stay in order). Not tracked for offsets: the request's result, sent only
        after its final chunk is acknowledged, is what commits the record."""
        future: asyncio.Future[Any] = await self._producer.send(
            topic, self._chunk_codec.encode(chunk), key=chunk["request_id"].encode())
        return future

    async def dead_letter(self, letter: DeadLetter, source: Source,
                          result: dict[str, Any] | None = None,
                          on_sent: OnSent | None = None) -> None:
        """The original record to the DLQ, plus a `rejected` result when its id is readable."""
        futures = [await self._producer.send(self._dlq_topic, letter.value, key=letter.key,
                                             headers=letter.headers)]
        if result is not None:
            futures.append(await self._producer.send(
                self._results_topic, self._codec.encode(result),
                key=result["request_id"].encode()))
        self._track(asyncio.gather(*futures), source, on_sent)

    def _track(self, future: asyncio.Future[Any], source: Source, on_sent: OnSent | None) -> None:
        self._unacked.add(future)

        def done(fut: asyncio.Future[Any]) -> None:
            self._unacked.discard(fut)
            if fut.cancelled():
                return
            error = fut.exception()
            if error is not None:
                logger.error("publishing for %s[%d]@%d failed; it stays uncommitted: %r",
                             source.tp.topic, source.tp.partition, source.offset, error)
                self._on_fatal(error)
                return
            self._tracker.finished(source.tp, source.offset)
            if on_sent is not None:
                on_sent()

        future.add_done_callback(done)

    async def wait_acknowledged(self) -> None:
        """Until everything sent so far is acknowledged (or failed)."""
        await self._producer.flush()
        if self._unacked:
            await asyncio.gather(*list(self._unacked), return_exceptions=True)
