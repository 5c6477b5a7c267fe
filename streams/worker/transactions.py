"""Exactly-once delivery: per input partition, Kafka transactions carrying the answers of the
records they cover and the partition's next offset, started as soon as answers are ready (at
most one in flight per partition; the commit interval bounds the wait when nothing wakes us).

aiokafka's transaction requests are version 0: `send_offsets_to_transaction` carries no
consumer-group generation, so there is no KIP-447 fencing. Zombies are fenced the way Kafka
Streams did before KIP-447: one transactional producer per input partition, its
`transactional.id` derived from the group, topic and partition. The new owner starts its
producer at assignment: its InitProducerId bumps the id's epoch, aborts the old owner's open
transaction and fences it; the committed offset is then stable and the new owner seeks to it.

Answers finish out of order (several models, continuous batching). An answer enters a
transaction only when every earlier offset of its partition is answered: later ones wait in a
per-partition hold-back buffer (`hold`). A transaction carries finished work only, never a
model call. Token chunks stay outside (at-least-once with `seq`).

Failures:
- a record the transaction could not take (too large, a refusing reply topic) aborts it; the
  record is replaced by its reduced form or by `rejected` + a dead letter, and the next tick
  commits the partition's held answers again — from memory, nothing is recomputed;
- fenced (a new owner took the partition): nothing of ours becomes visible; its held work is
  dropped and it is suspended until revoked; if no revocation comes (we were no zombie), it is
  re-initialised after `recover_after_s`, rewound to the committed offset and its work redone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from streams.protocol.fit import Outgoing
from streams.worker.observer import WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.options import EngineOptions
from streams.worker.outcomes import Outcome
from streams.worker.repair import Repairer
from streams.worker.txn_failures import (
    FENCED,
    RecordRefused,
    refused_records,
    send_in_transaction,
)

logger = logging.getLogger(__name__)

MakeProducer = Callable[[str], AIOKafkaProducer]
Rewind = Callable[[TopicPartition], Awaitable[None]]  # seek to the committed offset


class PartitionTransactions:
    def __init__(self, options: EngineOptions, tracker: OffsetTracker[TopicPartition],
                 assigned: set[TopicPartition], repairer: Repairer, observer: WorkerObserver,
                 make_producer: MakeProducer,
                 release: Callable[[set[TopicPartition]], Awaitable[object]],
                 rewind: Rewind, recover_after_s: float = 15.0) -> None:
        self._options = options
        self._tracker = tracker
        self._assigned = assigned  # the engine's live set (the rebalance listener updates it)
        self._repairer = repairer
        self._observer = observer
        self._make_producer = make_producer
        self._release = release  # drop a partition's queued and running work
        self._rewind = rewind
        self._recover_after_s = recover_after_s
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        self._held: dict[TopicPartition, dict[int, tuple[Outcome, float]]] = {}
        self._locks: dict[TopicPartition, asyncio.Lock] = {}
        self.suspended: set[TopicPartition] = set()  # fenced: no fetching until revoked
        self._recovering: set[asyncio.Task[None]] = set()
        self._answers_held = asyncio.Event()  # wakes the committer (`answers_to_commit`)
        self.committed = 0  # transactions committed (metrics, bench)
        self.aborted = 0

    # ---- ownership ----------------------------------------------------------------------
    async def assign(self, partitions: set[TopicPartition]) -> None:
        """Start each partition's producer (fencing its previous owner), then rewind it to the
        committed offset, which is stable now."""
        await asyncio.gather(*(self._open(tp) for tp in partitions))
        for tp in partitions:
            await self._rewind(tp)

    async def revoke(self, partitions: set[TopicPartition], timeout_s: float) -> None:
        """Commit what is finished for `partitions`, then close their producers."""
        try:
            await asyncio.wait_for(asyncio.gather(*(self.commit(tp) for tp in partitions)),
                                   timeout_s)
        except TimeoutError:
            logger.warning("final transactions of %d revoked partitions did not finish in "
                           "%.0fs; their new owner redoes the work", len(partitions), timeout_s)
        for tp in partitions:
            await self._close(tp)

    def hold(self, outcome: Outcome) -> None:
        """Keep a finished answer until its partition's next transaction."""
        tp = outcome.source.tp
        if tp not in self._producers:
            return  # revoked or fenced meanwhile: the new owner answers it
        self._held.setdefault(tp, {})[outcome.source.offset] = (outcome, time.monotonic())
        self._answers_held.set()

    async def answers_to_commit(self, max_wait_s: float) -> None:
        """Return once an answer was held since the last call, or after `max_wait_s`. The
        committer starts transactions as soon as there is work for one: a fixed tick added up to
        a whole interval (plus the previous commit's duration) to every answer's latency."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answers_held.wait(), max_wait_s)
        self._answers_held.clear()

    def held(self) -> int:
        return sum(len(v) for v in self._held.values())

    # ---- committing ---------------------------------------------------------------------
    async def commit_all(self) -> None:
        await asyncio.gather(*(self.commit(tp) for tp in list(self._producers)))

    async def commit(self, tp: TopicPartition) -> None:
        """One transaction: the held answers below the partition's commit position, and the
        position itself (the lowest unanswered offset).

        Shielded: a caller cancelled mid-commit (the committer at shutdown) must not leave a
        commit whose outcome we never saw — its answers would be sent again by the next one."""
        await asyncio.shield(self._commit(tp))

    async def _commit(self, tp: TopicPartition) -> None:
        async with self._locks.setdefault(tp, asyncio.Lock()):
            producer, position = self._producers.get(tp), self._tracker.position(tp)
            held = self._held.get(tp, {})
            ready = sorted(offset for offset in held if position is not None
                           and offset < position)
            if producer is None or position is None or not ready:
                return
            sent: list[tuple[int, Outgoing, asyncio.Future[Any] | BaseException]] = []
            try:
                await producer.begin_transaction()
                for offset in ready:
                    for record in held[offset][0].records:
                        sent.append((offset, record, await send_in_transaction(producer, record)))
                if any(isinstance(item, BaseException) for _, _, item in sent):
                    raise RecordRefused  # never commit an answer without one of its records
                await producer.send_offsets_to_transaction({tp: position},
                                                           self._options.consumer_group)
                await producer.commit_transaction()
            except FENCED as exc:
                await self._fenced(tp, exc)
                return
            except Exception as exc:  # noqa: BLE001 - abort, repair, the next tick retries
                await self._abort(tp, producer, exc, refused_records(sent))
                return
            self._committed(tp, ready, position)

    def _committed(self, tp: TopicPartition, ready: list[int], position: int) -> None:
        now, held = time.monotonic(), self._held[tp]
        for offset in ready:
            outcome, held_at = held.pop(offset)
            self._observer.held_back(now - held_at)
            if outcome.on_sent is not None:
                outcome.on_sent(outcome.result)
        self._tracker.mark_committed({tp: position})
        self.committed += 1
        self._observer.transaction("committed", len(ready))

    async def _abort(self, tp: TopicPartition, producer: AIOKafkaProducer, error: BaseException,
                     failures: list[tuple[int, Outgoing, BaseException]]) -> None:
        self.aborted += 1
        self._observer.transaction("aborted", 0)
        logger.warning("transaction of %s[%d] failed (%r): aborting, retried next tick",
                       tp.topic, tp.partition, error)
        try:
            await producer.abort_transaction()
        except FENCED as exc:
            await self._fenced(tp, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a producer that cannot abort is replaced
            logger.warning("abort failed (%r): re-initialising %s[%d]", exc, tp.topic,
                           tp.partition)
            await self._reinitialise(tp)
            return
        for offset, record, record_error in failures:  # swapped for what repair sends instead
            outcome, held_at = self._held[tp][offset]
            self._held[tp][offset] = (self._repairer.replacement(outcome, record, record_error),
                                      held_at)

    # ---- producers ----------------------------------------------------------------------
    async def _open(self, tp: TopicPartition) -> None:
        producer = self._make_producer(self._options.transactional_id(tp.topic, tp.partition))
        await producer.start()  # InitProducerId: fences the previous owner of this id
        self._producers[tp] = producer
        self._held.setdefault(tp, {})
        self.suspended.discard(tp)

    async def _close(self, tp: TopicPartition) -> None:
        producer = self._producers.pop(tp, None)
        self._held.pop(tp, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # noqa: BLE001 - a fenced producer may refuse to stop
                logger.debug("stopping the producer of %s failed: %r", tp, exc)

    async def _fenced(self, tp: TopicPartition, error: BaseException) -> None:
        """Someone else owns `tp` now: none of our held work becomes visible."""
        logger.warning("producer of %s[%d] was fenced (%r): its held work is dropped",
                       tp.topic, tp.partition, error)
        self._observer.transaction("fenced", 0)
        self.suspended.add(tp)
        for outcome, _ in self._held.get(tp, {}).values():
            if outcome.result is not None:
                self._observer.replayed(outcome.result, "fenced")
        await self._close(tp)
        await self._release({tp})
        self._recovering.add(asyncio.get_running_loop().create_task(
            self._recover_later(tp), name=f"recover-{tp.topic}-{tp.partition}"))
        self._recovering = {t for t in self._recovering if not t.done()}

    async def _reinitialise(self, tp: TopicPartition) -> None:
        await self._close(tp)
        await self._release({tp})
        await self._recover(tp)

    async def _recover_later(self, tp: TopicPartition) -> None:
        await asyncio.sleep(self._recover_after_s)
        try:
            await self._recover(tp)
        except Exception:
            logger.exception("re-initialising %s[%d] failed", tp.topic, tp.partition)

    async def _recover(self, tp: TopicPartition) -> None:
        """Still ours after all (no revocation came): a new producer, rewind, redo."""
        if tp not in self._assigned:
            self.suspended.discard(tp)  # revoked meanwhile: the new owner has it
            return
        if tp in self._producers:
            return
        self._tracker.assign(tp)  # a new generation: anything in flight for tp is stale
        await self._open(tp)
        await self._rewind(tp)
        logger.info("%s[%d] re-initialised and rewound to its committed offset", tp.topic,
                    tp.partition)

    async def close(self) -> None:
        for task in self._recovering:
            task.cancel()
        for tp in list(self._producers):
            await self._close(tp)
