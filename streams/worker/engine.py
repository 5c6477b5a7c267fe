"""The worker: one aiokafka consumer in the service's consumer group feeding one lane per model.

Why a hand-written loop rather than a faust agent: measured on 2 cores (docs/design.md), a tuned
faust agent tops out at ≈12k records/s while this loop inside the faust app does ≈39k, and it
gives exact control of commits and of partition revocation. The jobs are split by file:
`fetcher` (poll, memory caps), `admission` (decode → validate → route), `rejection` (dead
letters), lanes (`static_lane`, `stream_lane`), `emitter` (publish, acknowledgements),
`rebalance` (commits, hand-overs). Guarantees:
- offsets are committed only up to the lowest record not yet answered (results and DLQ copies
  acknowledged with acks=all): at-least-once, duplicates possible only for in-flight records;
- no record can stop the worker: every record gets a result or a dead letter, and a publish
  that cannot succeed as it is goes out in a reduced form (`emitter`);
- every task is supervised (`supervisor`), and `/health` says when the worker cannot go on.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from models.base import StreamingGenerator
from streams.policy.batching import MicroBatcher
from streams.protocol.results import rejected_instead
from streams.tracing.setup import open_tracing
from streams.wire.codec import RecordCodec, token_codec
from streams.wire.registry_catalog import RegistrySchemas
from streams.worker.admission import Admission
from streams.worker.answers import Answers
from streams.worker.emitter import Emitter
from streams.worker.fetcher import Fetcher
from streams.worker.health import Health
from streams.worker.jobs import Job
from streams.worker.lanes.base import Lane, LaneHooks
from streams.worker.lanes.static import StaticLane
from streams.worker.lanes.streaming import StreamingLane
from streams.worker.observer import NullObserver, WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.options import EngineOptions
from streams.worker.outcomes import Topics
from streams.worker.rebalance import Committer, Rebalancer
from streams.worker.rejection import Rejector
from streams.worker.replies import ReplyPolicy, ReplyTopics
from streams.worker.served import ServedModel, ServedModels
from streams.worker.supervisor import Supervisor
from streams.worker.transactions import PartitionTransactions

if TYPE_CHECKING:
    from streams.tracing.spans import Tracer

logger = logging.getLogger(__name__)


class WorkerEngine:
    def __init__(self, options: EngineOptions, served: ServedModels,
                 request_codec: RecordCodec, result_codec: RecordCodec,
                 observer: WorkerObserver | None = None,
                 chunk_codec: RecordCodec | None = None, health: Health | None = None,
                 schemas: RegistrySchemas | None = None, tracer: Tracer | None = None) -> None:
        self.options = options
        self.served = served
        self.observer: WorkerObserver = observer or NullObserver()
        self.health = health or Health()
        self.supervisor = Supervisor(self.health, self._restarted)
        # Spans and trace headers (streams.tracing): None, and free, unless tracing is on.
        self.tracer = tracer if tracer is not None else open_tracing(options.tracing)
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.assigned: set[TopicPartition] = set()
        self._consumer = AIOKafkaConsumer(**options.consumer_kwargs)
        self._producer = AIOKafkaProducer(**options.producer_kwargs)
        self._replies = ReplyTopics(
            ReplyPolicy(options.results_topic, options.reply_topic_prefix,
                        {options.requests_topic, options.dlq_topic, options.tokens_topic}),
            self._list_topics)
        self._emitter = Emitter(
            self._producer, result_codec, self._tracker,
            Topics(options.results_topic, options.dlq_topic, options.tokens_topic), self._fatal,
            chunk_codec or token_codec(), max_record_bytes=options.max_record_bytes,
            rejected_for=partial(rejected_instead, worker_id=options.worker_id),
            on_refused=self._replies.refused, on_reduced=self.observer.reduced)
        rejector = Rejector(self._emitter, self.observer, options.worker_id,
                            tracing=self.tracer is not None)
        answers = Answers(self._tracker, self._emitter, rejector, self.observer)
        self._hooks = LaneHooks(options.worker_id, answers.publish, answers.dead_letter,
                                answers.publish_chunk, self.observer, self.health, self.supervisor,
                                self.tracer)
        self.lanes: dict[tuple[str, str], Lane] = {m.key: self._new_lane(m) for m in served}
        self._admission = Admission(request_codec, lambda: self.served, self.lanes,
                                    self._replies, rejector, answers.publish, self.observer,
                                    options.worker_id, schemas, self.tracer)
        self._fetcher = Fetcher(self._consumer, self._tracker, self._admission, options,
                                self.observer, self.assigned)
        self._committer = Committer(self._consumer, self._tracker, self.assigned)
        self.rebalancer = Rebalancer(self._tracker, self.assigned, self.lanes, self._emitter,
                                     self._committer, self.observer, options.worker_id,
                                     options.revoke_ack_timeout_s,
                                     self._fetcher.resumed_by_rebalance,
                                     pause=self._consumer.pause, resume=self._consumer.resume)
        self.transactions: PartitionTransactions | None = None
        if options.exactly_once:
            self._use_transactions()
        self._stopping = asyncio.Event()
        self._failure: BaseException | None = None

    # ---- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until `stop()`; then finish in-flight work, commit and leave the group."""
        await self._producer.start()
        self._consumer.subscribe([self.options.requests_topic], listener=self.rebalancer)
        await self._consumer.start()
        for lane in self.lanes.values():
            lane.start()
        txns = self.transactions
        commit = txns.commit_all if txns is not None else None
        wake = txns.answers_to_commit if txns is not None else None
        self.supervisor.spawn("committer", lambda: self._committer.run(
            self.options.commit_interval_ms, self._report_progress, commit, wake))
        try:
            await self._fetcher.run(self._stopping)
        except Exception as exc:
            self.health.fail("task:fetch", f"fetch loop failed: {type(exc).__name__}")
            raise
        finally:
            await self.supervisor.stop("committer")
            await self._shutdown()
        if self._failure is not None:
            raise self._failure

    def stop(self) -> None:
        self._stopping.set()

    @property
    def consumed(self) -> int:
        return self._fetcher.consumed

    @property
    def revocations(self) -> int:
        return self.rebalancer.revocations

    @property
    def ready(self) -> bool:
        return bool(self.assigned) and not self._stopping.is_set()

    def _new_lane(self, model: ServedModel) -> Lane:
        options = self.options
        if isinstance(model.runner, StreamingGenerator):
            # Continuous batching admits requests one at a time: a size-1 queue, no waiting.
            return StreamingLane(model, MicroBatcher(1, 0.0, options.max_batch_tokens),
                                 self._hooks)
        batcher: MicroBatcher[Job] = MicroBatcher(
            min(options.max_batch_size, model.runner.max_batch_size), options.max_wait_ms,
            options.max_batch_tokens)
        return StaticLane(model, batcher, self._hooks)

    async def replace_models(self, served: ServedModels) -> None:
        """Serve `served` from now on (hot reload): start lanes for new versions, switch the
        routing table in one step, then let retired versions finish their queued jobs and
        close them. No request is dropped: a job already queued runs where it was queued."""
        for model in served:
            if model.key not in self.lanes:
                lane = self._new_lane(model)
                lane.start()
                self.lanes[model.key] = lane
        retired = [self.lanes.pop(key) for key in list(self.lanes)
                   if key not in served.by_version]
        self.served = served  # no await since the lanes changed: routing and lanes agree
        self.observer.serving(served.names())
        for lane in retired:
            await lane.retire()
            await asyncio.to_thread(lane.model.runner.close)

    def _fatal(self, error: BaseException) -> None:
        """A publish failed for good: stop, uncommitted (the next owner redoes the record)."""
        self.health.fail("publish", f"a result could not be published: {type(error).__name__}")
        if self._failure is None:
            self._failure = error
        self.stop()

    def _restarted(self, task: str) -> None:
        self.observer.task_restarted(task)

    async def _shutdown(self) -> None:
        """Graceful: queued jobs are handed back uncommitted, computing work may finish."""
        for lane in self.lanes.values():
            lane.remove(lambda job: False)
        try:
            await asyncio.wait_for(asyncio.gather(*(lane.idle() for lane in self.lanes.values())),
                                   self.options.shutdown_grace_s)
        except TimeoutError:
            logger.warning("work still running after %.0fs at shutdown: handed back",
                           self.options.shutdown_grace_s)
        for lane in self.lanes.values():
            await lane.stop()
        try:
            await asyncio.wait_for(self._emitter.wait_acknowledged(),
                                   self.options.revoke_ack_timeout_s)
        except TimeoutError:
            logger.warning("acknowledgements still pending at shutdown; left uncommitted")
        if self._failure is None:
            try:
                if self.transactions is not None:
                    await self.transactions.commit_all()
                else:
                    await self._committer.commit()
            except Exception as exc:  # noqa: BLE001 - the next owner redoes uncommitted work
                logger.warning("final commit failed: %r", exc)
        if self.transactions is not None:
            await self.transactions.close()
        await self.supervisor.stop_all()
        await self._consumer.stop()
        await self._producer.stop()
        if self.tracer is not None:  # the last spans out (the exporter may block: off the loop)
            await asyncio.to_thread(self.tracer.flush)

    def _use_transactions(self) -> None:
        """Exactly-once: per-partition transactional producers commit answers and offsets."""
        kwargs = self.options.transactional_kwargs

        def producer_for(transactional_id: str) -> AIOKafkaProducer:
            return AIOKafkaProducer(**{**kwargs, "transactional_id": transactional_id})

        async def rewind(tp: TopicPartition) -> None:
            committed = await self._consumer.committed(tp)
            if committed is None:  # a new group: where auto_offset_reset=earliest starts
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

        self.transactions = PartitionTransactions(
            self.options, self._tracker, self.assigned, self._emitter.repairer, self.observer,
            producer_for, self.rebalancer.release, rewind)
        self._emitter.use_transactions(self.transactions)
        self.rebalancer.transactions = self.transactions
        self._fetcher.suspended = self.transactions.suspended

    async def _list_topics(self) -> set[str]:
        metadata = await self._producer.client.fetch_all_metadata()
        return set(metadata.topics())

    def _report_progress(self) -> None:
        # Lag counts from the lowest unanswered offset, not the fetch position: records we
        # fetched but have not answered are still work to do.
        lag = {}
        for tp in self.assigned:
            highwater = self._consumer.highwater(tp)
            position = self._tracker.position(tp)
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        revoked, self.rebalancer.revoked = self.rebalancer.revoked, []
        self.observer.progress(self._tracker.in_flight(), lag, revoked)

