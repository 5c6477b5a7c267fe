"""The emitter's slow path: what to do when a publish failed (see `emitter` for the rules).

Each failed record of an outcome is classified (`outcomes.failure_kind`) and repaired in its
own task, so the lane or fetch loop that published never waits for it: a record too large or
with nothing to send goes again in a reduced form (`streams.protocol.fit`); a refusing reply
topic turns the answer into `rejected` on the results topic plus a dead letter; anything else
is fatal (reported, the record stays uncommitted). The outcome finishes only when every record
of it is delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streams.protocol.dead_letters import dead_letter
from streams.protocol.fit import (
    DLQ_VALUE_STEPS,
    Outgoing,
    fit_dead_letter,
    fit_result,
    shrink_result,
)
from streams.worker.outcomes import Outcome, RejectedFor, Topics, failure_kind

logger = logging.getLogger(__name__)

Send = Callable[[Outgoing], Awaitable["asyncio.Future[Any] | BaseException"]]
ResultRecord = Callable[[dict[str, Any], str, list[str]], Outgoing]


class Repairer:
    def __init__(self, send: Send, result_record: ResultRecord, topics: Topics,
                 max_record_bytes: int, rejected_for: RejectedFor,
                 finished: Callable[[Outcome, dict[str, Any] | None], None],
                 on_fatal: Callable[[BaseException], None], on_refused: Callable[[str], None],
                 on_reduced: Callable[[str], None]) -> None:
        self._send = send
        self._result_record = result_record
        self._topics = topics
        self._max_bytes = max_record_bytes
        self._rejected_for = rejected_for
        self._finished = finished
        self._on_fatal = on_fatal
        self._on_refused = on_refused
        self._on_reduced = on_reduced
        self.running: set[asyncio.Task[None]] = set()

    def spawn(self, outcome: Outcome,
                      sent: list[asyncio.Future[Any] | BaseException]) -> None:
        task = asyncio.get_running_loop().create_task(self._repair(outcome, sent),
                                                      name="emitter-repair")
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def _repair(self, outcome: Outcome,
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
                          outcome: Outcome) -> tuple[bool, dict[str, Any] | None]:
        """(delivered, the result that replaced outcome.result or None)."""
        where = f"{outcome.source.tp.topic}[{outcome.source.tp.partition}]@{outcome.source.offset}"
        kind = failure_kind(error)
        if kind == "too_large":
            for smaller in self.smaller(record, outcome):
                error_or_none = await self._deliver(smaller)
                if error_or_none is None:
                    self._on_reduced("dlq" if record.topic == self._topics.dlq else "result")
                    logger.warning("record for %s sent in reduced form (%r)", where, error)
                    return True, None
                error = error_or_none
                if failure_kind(error) != "too_large":
                    break
            kind = failure_kind(error)
        if kind == "refused" and record.topic not in self._topics.own():
            return await self._reroute_refused(record.topic, error, outcome)
        logger.error("publishing for %s failed; it stays uncommitted: %r", where, error)
        self._on_fatal(error)
        return False, None

    def smaller(self, record: Outgoing, outcome: Outcome) -> list[Outgoing]:
        """Reduced forms of `record` to try in turn, largest first (empty: none exists)."""
        if record.topic == self._topics.dlq:
            return [fit_dead_letter(record, self._max_bytes, cap) for cap in DLQ_VALUE_STEPS]
        if outcome.result is None:
            return []
        shrunk, cuts = shrink_result(fit_result(outcome.result)[0])
        return [self._result_record(shrunk, record.topic, cuts)]

    def replacement(self, outcome: Outcome, record: Outgoing, error: BaseException) -> Outcome:
        """`outcome` with `record`, which a transaction refused, swapped for what the repair
        rules send instead: its reduced form, or `rejected` + a dead letter for a refusing reply
        topic; unchanged when neither applies."""
        kind = failure_kind(error)
        if kind == "too_large":
            smaller = self.smaller(record, outcome)
            if smaller:
                records = [smaller[-1] if r is record else r for r in outcome.records]
                return Outcome(outcome.source, records, outcome.result, outcome.on_sent)
        elif kind == "refused" and record.topic != self._topics.results:
            return self.rerouted(record.topic, error, outcome)
        return outcome

    def rerouted(self, topic: str, error: BaseException, outcome: Outcome) -> Outcome:
        """What replaces an answer its reply topic refused: `rejected` (code
        `reply_topic_unavailable`) on the results topic, plus the request's dead letter."""
        self._on_refused(topic)
        source, message = outcome.source, f"reply topic {topic!r} is unavailable"
        assert outcome.result is not None  # only results go to reply topics
        rejected, cuts = fit_result(self._rejected_for(outcome.result, "reply_topic_unavailable",
                                                       message))
        letter = dead_letter(key=source.key, value=source.value, topic=source.tp.topic,
                             partition=source.tp.partition, offset=source.offset,
                             original_headers=source.headers,
                             error_class=type(error).__name__, message=message,
                             code="reply_topic_unavailable")
        records = [self._result_record(rejected, self._topics.results, cuts),
                   fit_dead_letter(Outgoing(self._topics.dlq, letter.key, letter.value or b"",
                                            letter.headers), self._max_bytes)]
        return Outcome(source, records, rejected, outcome.on_sent)

    async def _reroute_refused(self, topic: str, error: BaseException,
                               outcome: Outcome) -> tuple[bool, dict[str, Any] | None]:
        """A reply topic refused the result: `rejected` on the results topic + a dead letter."""
        replacement = self.rerouted(topic, error, outcome)
        rejected, records = replacement.result, replacement.records
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
