"""Publishes results and dead letters, and marks a record finished only once Kafka has them all.

A record's offset becomes committable when every record it produced (its result, its DLQ copy)
is acknowledged by all in-sync replicas. Publishing never raises into its caller (a lane, the
fetch loop): aiokafka raises some errors from `send()` itself (unknown topic, authorization,
record too large, neither key nor value) and others through the future, and each kind has one
answer here:

- **too large / unproducible** — the record derived from a client's record is sent again in a
  reduced form (`streams.protocol.fit`), with a header saying what was cut;
- **a reply topic refuses us** (missing, unauthorized, invalid) — the request is answered with a
  `rejected` result (code `reply_topic_unavailable`) on the results topic plus its dead letter,
  and the topic is reported so admission refuses it at once from then on;
- **anything else** (brokers unreachable after the producer's retries, our own topics refused) —
  fatal: the record stays uncommitted, the worker turns unhealthy and stops, the next owner of
  the partition redoes it. Nothing is ever dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.protocol.dead_letters import DeadLetter
from streams.protocol.fit import Headers, Outgoing, cut_note, fit_dead_letter, fit_result
from streams.wire.codec import RecordCodec
from streams.worker.jobs import Source
from streams.worker.offsets import OffsetTracker
from streams.worker.outcomes import OnSent, Outcome, RejectedFor, Topics
from streams.worker.repair import Repairer
from streams.worker.transactions import PartitionTransactions

logger = logging.getLogger(__name__)

TP = Any  # aiokafka.TopicPartition


class Emitter:
    def __init__(self, producer: AIOKafkaProducer, codec: RecordCodec,
                 tracker: OffsetTracker[TP], topics: Topics,
                 on_fatal: Callable[[BaseException], None], chunk_codec: RecordCodec, *,
                 max_record_bytes: int, rejected_for: RejectedFor,
                 on_refused: Callable[[str], None] = lambda topic: None,
                 on_reduced: Callable[[str], None] = lambda kind: None) -> None:
        self._producer = producer
        self._codec = codec
        self._tracker = tracker
        self._topics = topics
        self._on_fatal = on_fatal
        self._chunk_codec = chunk_codec
        self._max_bytes = max_record_bytes
        self._unacked: set[asyncio.Future[Any]] = set()
        self._repairs = Repairer(self._send, self._result_record, topics, max_record_bytes,
                                 rejected_for, self._finished, on_fatal, on_refused, on_reduced)
        self._transactions: PartitionTransactions | None = None
        self.chunk_failures = 0

    @property
    def repairer(self) -> Repairer:
        return self._repairs

    def use_transactions(self, transactions: PartitionTransactions) -> None:
        """Exactly-once: answers are held for their partition's next transaction instead of
        being sent at once (token chunks still go at once, outside transactions)."""
        self._transactions = transactions

    # ---- what the worker publishes ----------------------------------------------------
    async def result(self, result: dict[str, Any], source: Source,
                     reply_topic: str | None = None, on_sent: OnSent | None = None,
                     headers: Headers | None = None) -> None:
        """Publish one result (key = request id) for the record at `source`; `headers`: its
        trace context."""
        record = self._result_record(result, reply_topic or self._topics.results, None, headers)
        await self._emit(Outcome(source, [record], result, on_sent))

    async def dead_letter(self, letter: DeadLetter, source: Source,
                          result: dict[str, Any] | None = None,
                          on_sent: OnSent | None = None, result_topic: str | None = None,
                          result_headers: Headers | None = None) -> None:
        """The original record to the DLQ, plus its result (`rejected`, or the model's error)
        when there is one: on the results topic unless `result_topic` (an allowed reply topic)."""
        records = [fit_dead_letter(Outgoing(self._topics.dlq, letter.key, letter.value or b"",
                                            letter.headers), self._max_bytes)]
        if result is not None:
            result, cuts = fit_result(result)
            records.append(self._result_record(result, result_topic or self._topics.results,
                                               cuts, result_headers))
        await self._emit(Outcome(source, records, result, on_sent))

    async def chunk(self, chunk: dict[str, Any],
                    headers: Headers | None = None) -> asyncio.Future[Any] | None:
        """Publish one token chunk (key = request id: one request's chunks share a partition,
        so they stay in order). Not tracked for offsets: the request's result, sent only after
        its final chunk, is what commits the record. A chunk that cannot be sent is counted
        and skipped (None): the result still carries the whole text."""
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                self._topics.tokens, self._chunk_codec.encode(chunk),
                key=chunk["request_id"].encode(), headers=headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a stream loses a chunk, never the worker
            self.chunk_failures += 1
            logger.warning("token chunk for a request could not be sent: %r", exc)
            return None
        return future

    async def wait_acknowledged(self) -> None:
        """Until everything sent so far is acknowledged (or failed) and every repair is done."""
        await self._producer.flush()
        while self._unacked or self._repairs.running:
            await asyncio.gather(*list(self._unacked), *list(self._repairs.running),
                                 return_exceptions=True)

    # ---- sending ------------------------------------------------------------------------
    def _result_record(self, result: dict[str, Any], topic: str,
                       cuts: list[str] | None = None, headers: Headers | None = None
                       ) -> Outgoing:
        """A result as a record: key = request id (a request's answers share a partition)."""
        return Outgoing(topic, str(result["request_id"]).encode(), self._codec.encode(result),
                        [*(headers or ()), *cut_note(cuts or [])])

    async def _emit(self, outcome: Outcome) -> None:
        if self._transactions is not None:
            self._transactions.hold(outcome)
            # Answered: the commit position may pass it, its records go in the same transaction.
            self._tracker.finished(outcome.source.tp, outcome.source.generation,
                                   outcome.source.offset)
            return
        sent: list[asyncio.Future[Any] | BaseException] = []
        for record in outcome.records:
            sent.append(await self._send(record))
        if any(isinstance(item, BaseException) for item in sent):
            self._repairs.spawn(outcome, sent)  # refused before it was even queued
            return
        futures = [item for item in sent if isinstance(item, asyncio.Future)]
        gathered = futures[0] if len(futures) == 1 else asyncio.gather(*futures)
        self._unacked.add(gathered)
        gathered.add_done_callback(lambda fut: self._acknowledged(fut, outcome, futures))

    async def _send(self, record: Outgoing) -> asyncio.Future[Any] | BaseException:
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                record.topic, record.value, key=record.key, headers=record.headers or None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified and answered by the repair
            return exc
        return future

    def _acknowledged(self, fut: asyncio.Future[Any], outcome: Outcome,
                      futures: list[asyncio.Future[Any]]) -> None:
        self._unacked.discard(fut)
        if fut.cancelled():
            return
        if fut.exception() is None:
            self._finished(outcome, outcome.result)
            return
        self._repairs.spawn(outcome, list(futures))

    def _finished(self, outcome: Outcome, published: dict[str, Any] | None) -> None:
        self._tracker.finished(outcome.source.tp, outcome.source.generation,
                               outcome.source.offset)
        if outcome.on_sent is not None:
            outcome.on_sent(published)
