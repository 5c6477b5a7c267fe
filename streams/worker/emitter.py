"""Publishes results and dead letters, and marks a record finished only once Kafka has them all.

A record's offset becomes committable when every record it produced (its result, its DLQ copy)
is acknowledged by all in-sync replicas. Publishing never raises into its caller (a lane, the
fetch loop): aiokafka raises some errors from `send()` itself (unknown topic, authorization,
record too large, neither key nor value) and others through the future, and each kind has one
answer here:

- **too large / unproducible** — the record derived from a client's record is sent again in a
  reduced form (`streams.worker.fit`), with a header saying what was cut;
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
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from streams.codec import RecordCodec
from streams.worker.dlq import DeadLetter, dead_letter
from streams.worker.fit import (
    DLQ_VALUE_STEPS,
    Outgoing,
    cut_note,
    fit_dead_letter,
    fit_result,
    shrink_result,
)
from streams.worker.jobs import Source
from streams.worker.offsets import OffsetTracker

logger = logging.getLogger(__name__)

TP = Any  # aiokafka.TopicPartition
OnSent = Callable[[dict[str, Any] | None], None]  # called with the result actually published
RejectedFor = Callable[[dict[str, Any], str, str], dict[str, Any]]  # (result, code, message)

_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError,
              CorruptRecordException, AssertionError)
_REFUSED = (UnknownTopicOrPartitionError, TopicAuthorizationFailedError, InvalidTopicError)


def failure_kind(error: BaseException) -> str:
    """'too_large' (this record cannot go as it is), 'refused' (its topic refuses us), 'fatal'."""
    if isinstance(error, _TOO_LARGE):
        return "too_large"
    if isinstance(error, _REFUSED):
        return "refused"
    return "fatal"


@dataclass(frozen=True)
class Topics:
    results: str
    dlq: str
    tokens: str


@dataclass
class _Outcome:
    """Everything one consumed record produces; finished when all of it is acknowledged."""

    source: Source
    records: list[Outgoing]
    result: dict[str, Any] | None  # the result among `records` (None: a dead letter alone)
    on_sent: OnSent | None


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
        self._rejected_for = rejected_for
        self._on_refused = on_refused
        self._on_reduced = on_reduced
        self._unacked: set[asyncio.Future[Any]] = set()
        self._repairs: set[asyncio.Task[None]] = set()
        self.chunk_failures = 0

    # ---- what the worker publishes ----------------------------------------------------
    async def result(self, result: dict[str, Any], source: Source,
                     reply_topic: str | None = None, on_sent: OnSent | None = None) -> None:
        """Publish one result (key = request id) for the record at `source`."""
        record = self._result_record(result, reply_topic or self._topics.results)
        await self._emit(_Outcome(source, [record], result, on_sent))

    async def dead_letter(self, letter: DeadLetter, source: Source,
                          result: dict[str, Any] | None = None,
                          on_sent: OnSent | None = None, result_topic: str | None = None) -> None:
        """The original record to the DLQ, plus its result (`rejected`, or the model's error)
        when there is one: on the results topic unless `result_topic` (an allowed reply topic)."""
        records = [fit_dead_letter(Outgoing(self._topics.dlq, letter.key, letter.value or b"",
                                            letter.headers), self._max_bytes)]
        if result is not None:
            result, cuts = fit_result(result)
            records.append(self._result_record(result, result_topic or self._topics.results,
                                               cuts))
        await self._emit(_Outcome(source, records, result, on_sent))

    async def chunk(self, chunk: dict[str, Any]) -> asyncio.Future[Any] | None:
        """Publish one token chunk (key = request id: one request's chunks share a partition,
        so they stay in order). Not tracked for offsets: the request's result, sent only after
        its final chunk, is what commits the record. A chunk that cannot be sent is counted
        and skipped (None): the result still carries the whole text."""
        try:
            future: asyncio.Future[Any] = await self._producer.send(
                self._topics.tokens, self._chunk_codec.encode(chunk),
                key=chunk["request_id"].encode())
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
        while self._unacked or self._repairs:
            await asyncio.gather(*list(self._unacked), *list(self._repairs),
                                 return_exceptions=True)

    # ---- sending ------------------------------------------------------------------------
    def _result_record(self, result: dict[str, Any], topic: str,
                       cuts: list[str] | None = None) -> Outgoing:
        return Outgoing(topic, str(result["request_id"]).encode(), self._codec.encode(result),
                        cut_note(cuts or []))

    async def _emit(self, outcome: _Outcome) -> None:
        sent: list[asyncio.Future[Any] | BaseException] = []
        for record in outcome.records:
            sent.append(await self._send(record))
        if any(isinstance(item, BaseException) for item in sent):
            self._spawn_repair(outcome, sent)  # refused before it was even queued
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

    def _acknowledged(self, fut: asyncio.Future[Any], outcome: _Outcome,
                      futures: list[asyncio.Future[Any]]) -> None:
        self._unacked.discard(fut)
        if fut.cancelled():
            return
        if fut.exception() is None:
            self._finished(outcome, outcome.result)
            return
        self._spawn_repair(outcome, list(futures))

    def _finished(self, outcome: _Outcome, published: dict[str, Any] | None) -> None:
        self._tracker.finished(outcome.source.tp, outcome.source.generation,
                               outcome.source.offset)
        if outcome.on_sent is not None:
            outcome.on_sent(published)

    # ---- repairs ------------------------------------------------------------------------
    def _spawn_repair(self, outcome: _Outcome,
                      sent: list[asyncio.Future[Any] | BaseException]) -> None:
        task = asyncio.get_running_loop().create_task(self._repair(outcome, sent),
                                                      name="emitter-repair")
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(self, outcome: _Outcome,
                      sent: list[asyncio.Future[Any] | BaseException]) -> None:
        try:
            errors = await _settle(sent)
            published = outcome.result
            for record, error in zip(outcome.records, errors, strict=True):
                if error is None:
                    continue
                ok, replaced = await self._repair_one(record, error, outcome)
                if not ok:
                    return  # fatal, reported: the record stays uncommitted
                if replaced is not None:
                    published = replaced
        except Exception as exc:
            logger.exception("repairing a failed publish failed")
            self._on_fatal(exc)
            return
        self._finished(outcome, published)

    async def _repair_one(self, record: Outgoing, error: BaseException,
                          outcome: _Outcome) -> tuple[bool, dict[str, Any] | None]:
        """(delivered, the result that replaced outcome.result or None)."""
        where = f"{outcome.source.tp.topic}[{outcome.source.tp.partition}]@{outcome.source.offset}"
        kind = failure_kind(error)
        if kind == "too_large":
            for smaller in self._smaller(record, outcome):
                error_or_none = await self._deliver(smaller)
                if error_or_none is None:
                    self._on_reduced("dlq" if record.topic == self._topics.dlq else "result")
                    logger.warning("record for %s sent in reduced form (%r)", where, error)
                    return True, None
                error = error_or_none
                if failure_kind(error) != "too_large":
                    break
            kind = failure_kind(error)
        if kind == "refused" and record.topic not in self._own_topics():
            return await self._reroute_refused(record.topic, error, outcome)
        logger.error("publishing for %s failed; it stays uncommitted: %r", where, error)
        self._on_fatal(error)
        return False, None

    def _smaller(self, record: Outgoing, outcome: _Outcome) -> list[Outgoing]:
        if record.topic == self._topics.dlq:
            return [fit_dead_letter(record, self._max_bytes, cap) for cap in DLQ_VALUE_STEPS]
        if outcome.result is None:
            return []
        shrunk, cuts = shrink_result(fit_result(outcome.result)[0])
        return [self._result_record(shrunk, record.topic, cuts)]

    async def _reroute_refused(self, topic: str, error: BaseException,
                               outcome: _Outcome) -> tuple[bool, dict[str, Any] | None]:
        """A reply topic refused the result: `rejected` on the results topic + a dead letter."""
        self._on_refused(topic)
        source, message = outcome.source, f"reply topic {topic!r} is unavailable"
        assert outcome.result is not None  # only results go to reply topics
        rejected, cuts = fit_result(self._rejected_for(outcome.result, "reply_topic_unavailable",
                                                       message))
        letter = dead_letter(key=source.key, value=source.value, topic=source.tp.topic,
                             partition=source.tp.partition, offset=source.offset,
                             error_class=type(error).__name__, message=message,
                             code="reply_topic_unavailable")
        records = [self._result_record(rejected, self._topics.results, cuts),
                   fit_dead_letter(Outgoing(self._topics.dlq, letter.key, letter.value or b"",
                                            letter.headers), self._max_bytes)]
        replacement = _Outcome(source, records, rejected, None)
        for record in records:
            failure = await self._deliver(record)
            if failure is not None:
                ok, _ = await self._repair_one(record, failure, replacement)
                if not ok:
                    return False, None
        return True, rejected

    async def _deliver(self, record: Outgoing) -> BaseException | None:
        """Send and wait for the acknowledgement; the error, or None once acknowledged."""
        sent = await self._send(record)
        if isinstance(sent, BaseException):
            return sent
        try:
            await sent
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by the caller
            return exc
        return None

    def _own_topics(self) -> set[str]:
        return {self._topics.results, self._topics.dlq, self._topics.tokens}


async def _settle(sent: list[asyncio.Future[Any] | BaseException]) -> list[BaseException | None]:
    """Per record: its error, or None once acknowledged (waits for the queued ones)."""
    errors: list[BaseException | None] = []
    for item in sent:
        if isinstance(item, BaseException):
            errors.append(item)
            continue
        try:
            await item
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified by the repair
            errors.append(exc)
        else:
            errors.append(None)
    return errors
