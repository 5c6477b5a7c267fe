"""Commits and partition hand-overs.

Offsets are committed every `commit_interval_ms` up to the lowest unanswered record of each
partition (at-least-once). A revocation is bounded so that the group never waits on a model:
queued jobs of revoked partitions are dropped, running generations of theirs are cancelled and
a computing static batch is not awaited (its results for revoked partitions are dropped as
stale) — the new owner redoes all of it; only the acknowledgements of what was already
published are awaited (bounded), then the finished positions are committed and the partitions
forgotten. Each assignment starts a new generation in the offset tracker.

Under exactly-once delivery (`worker/transactions.py`) the offsets go into each partition's
transaction instead: a revocation commits what is finished in one last transaction and closes
the partition's producer; an assignment first starts the new partitions' producers (fencing
their previous owners) and rewinds them to the committed offsets, before any record is taken.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata

from streams.worker.emitter import Emitter
from streams.worker.lanes.base import Lane
from streams.worker.observer import WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.transactions import PartitionTransactions

logger = logging.getLogger(__name__)

COALESCE_S = 0.005  # exactly-once: shortest gap between two commits of the committer


class Committer:
    def __init__(self, consumer: AIOKafkaConsumer, tracker: OffsetTracker[TopicPartition],
                 assigned: set[TopicPartition]) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._assigned = assigned

    async def commit(self, partitions: list[TopicPartition] | None = None) -> None:
        positions = self._tracker.to_commit(
            list(self._assigned) if partitions is None else partitions)
        if not positions:
            return
        await self._consumer.commit({tp: OffsetAndMetadata(pos, "") for tp, pos in
                                     positions.items()})
        self._tracker.mark_committed(positions)

    async def run(self, interval_ms: float, tick: Callable[[], None],
                  commit: Callable[[], Awaitable[None]] | None = None,
                  wake: Callable[[float], Awaitable[None]] | None = None) -> None:
        """Every interval: `commit` (default: the group commit of finished positions). With
        `wake` (exactly-once), whenever it returns instead: as soon as there is work, at most
        every `COALESCE_S`, so the answers of one finishing batch share a transaction."""
        commit = commit or self.commit
        next_at = time.monotonic()
        while True:
            if wake is not None:
                await asyncio.sleep(COALESCE_S)
                await wake(interval_ms / 1000.0)
            else:
                # A fixed rate: the commit's own duration does not stretch the interval.
                next_at = max(next_at + interval_ms / 1000.0, time.monotonic())
                await asyncio.sleep(next_at - time.monotonic())
            try:
                await commit()
            except Exception as exc:  # noqa: BLE001 - retried next tick; a rebalance may race
                logger.warning("offset commit failed (will retry): %r", exc)
            tick()


class Rebalancer(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, tracker: OffsetTracker[TopicPartition], assigned: set[TopicPartition],
                 lanes: Mapping[tuple[str, str], Lane], emitter: Emitter, committer: Committer,
                 observer: WorkerObserver, worker_id: str, ack_timeout_s: float,
                 on_assigned: Callable[[], None],
                 transactions: PartitionTransactions | None = None,
                 pause: Callable[..., None] = lambda *tps: None,
                 resume: Callable[..., None] = lambda *tps: None) -> None:
        self._tracker = tracker
        self._assigned = assigned
        self._lanes = lanes
        self._emitter = emitter
        self._committer = committer
        self._observer = observer
        self._worker_id = worker_id
        self._ack_timeout_s = ack_timeout_s
        self._on_assigned = on_assigned
        self.transactions = transactions  # exactly-once: commits go through these
        self._pause, self._resume = pause, resume  # the consumer's, by partition
        self.revoked: list[tuple[str, int]] = []  # for the metrics' next progress report
        self.revocations = 0  # hand-overs seen (a healthy idle group has none)
        self.last_revocation_s = 0.0  # how long the last on_partitions_revoked took

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        revoked = set(revoked)
        if not revoked:
            return
        started = time.monotonic()
        self.revocations += 1
        dropped, abandoned = await self.release(revoked, forget=False)
        try:  # token chunks (and, at least once, answers) already sent go out first
            await asyncio.wait_for(self._emitter.wait_acknowledged(), self._ack_timeout_s)
        except TimeoutError:
            logger.warning("acknowledgements still pending after %.0fs at revocation; the new "
                           "owner redoes what they cover", self._ack_timeout_s)
        if self.transactions is not None:
            await self.transactions.revoke(revoked, self._ack_timeout_s)
        else:
            try:
                await self._committer.commit(list(revoked))
            except Exception as exc:  # noqa: BLE001 - the new owner redoes uncommitted work
                logger.warning("commit on revocation failed; %d partitions will be redone: "
                               "%r", len(revoked), exc)
        self._tracker.forget(list(revoked))
        self.revoked.extend((tp.topic, tp.partition) for tp in revoked)
        self._assigned -= revoked
        self._observer.abandoned(abandoned)
        self._observer.assignment_changed(len(self._assigned))
        self.last_revocation_s = time.monotonic() - started
        self._observer.handed_over(self.last_revocation_s)
        logger.info("worker %s handed over %d partitions in %.2fs (%d queued jobs dropped, %d "
                    "running given up)", self._worker_id, len(revoked), self.last_revocation_s,
                    dropped, abandoned)

    async def release(self, partitions: set[TopicPartition], forget: bool = True
                      ) -> tuple[int, int]:
        """Give up the queued and running work of `partitions` (their next owner, or this
        worker after a rewind, redoes it); (queued jobs dropped, running requests given up)."""
        dropped = abandoned = 0
        for lane in self._lanes.values():
            dropped += len(lane.remove(lambda job: job.source.tp not in partitions))
            abandoned += await lane.abandon(partitions)
        if forget:
            self._tracker.forget(list(partitions))
        return dropped, abandoned

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        fresh = {tp for tp in assigned if tp not in self._assigned}
        if self.transactions is not None and fresh:
            # Before any record is taken: fence the previous owners, then rewind to the
            # committed offsets their last transactions left (stable once fenced). Paused
            # meanwhile, so that no record is fetched (and skipped) from a stale position.
            self._pause(*fresh)
            await self.transactions.assign(fresh)
        for tp in fresh:
            self._tracker.assign(tp)
        if self.transactions is not None and fresh:
            self._resume(*fresh)
        self._assigned |= set(assigned)
        self._on_assigned()
        self._observer.assignment_changed(len(self._assigned))
        logger.info("worker %s assigned %s", self._worker_id,
                    sorted(f"{tp.topic}[{tp.partition}]" for tp in self._assigned))
