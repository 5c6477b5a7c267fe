"""The fetch loop: poll Kafka, hand each record to admission, hold back when memory is full.

Memory is bounded in records and in bytes. Both caps are checked before every record, not only
between fetches: when one is reached mid-fetch, the partition is rewound to the first record not
taken (`seek`) and every partition is paused until enough in-flight work finishes; heartbeats
and polls go on meanwhile. A record larger than the byte cap is still taken when nothing else is
in flight, so no record can stall its partition. The request-log sink can also pause fetching
(its spool is full): rows are never dropped, the source waits instead.

Admission is synchronous work on the event loop (decode, caps, token counting: up to ~0.2 s for
a hostile input just under the character cap), and awaiting a coroutine that never suspends does
not yield. A fetch of 1,000 such records would starve the heartbeat task for minutes and get the
worker evicted, so the loop yields to the other tasks every `YIELD_EVERY_S` of admission work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from streams.clock import epoch_ms
from streams.worker.admission import Admission
from streams.worker.jobs import Source
from streams.worker.observer import WorkerObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.options import EngineOptions

logger = logging.getLogger(__name__)

# Longest stretch of admission work between two chances for heartbeats, polls and lanes to run.
YIELD_EVERY_S = 0.02


class Fetcher:
    def __init__(self, consumer: AIOKafkaConsumer, tracker: OffsetTracker[TopicPartition],
                 admission: Admission, options: EngineOptions, observer: WorkerObserver,
                 assigned: set[TopicPartition]) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._admission = admission
        self._options = options
        self._observer = observer
        self._assigned = assigned  # the engine's live set (the rebalance listener updates it)
        self.paused_for: str | None = None
        self.suspended: set[TopicPartition] = set()  # set by exactly-once delivery when fenced
        self._paused_suspended: set[TopicPartition] = set()
        self.consumed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        stop_wait = asyncio.ensure_future(stopping.wait())
        try:
            while not stopping.is_set():
                self.hold_back()
                fetch = asyncio.ensure_future(self._consumer.getmany(
                    timeout_ms=self._options.fetch_timeout_ms,
                    max_records=self._options.max_fetch_records))
                await asyncio.wait({fetch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    break
                fetched = fetch.result()
                # The generations the records were fetched under, read before any await: a
                # hand-over while we admit must not let them into a newer generation.
                generations = {tp: self._tracker.generation(tp) for tp in fetched}
                for tp, records in fetched.items():
                    await self._take(tp, records, generations[tp])
        finally:
            stop_wait.cancel()

    def resumed_by_rebalance(self) -> None:
        """A new assignment starts unpaused."""
        self.paused_for = None

    def hold_back(self) -> None:
        """Pause every partition while memory is full or a sink asks; resume after. Suspended
        partitions (fenced, waiting for their revocation) stay paused."""
        reason = self._full() or self._observer.backpressure()
        if reason and self.paused_for is None:
            self._consumer.pause(*self._assigned)
            logger.info("fetching paused: %s", reason)
        elif reason is None and self.paused_for is not None:
            self._consumer.resume(*(self._assigned - self.suspended))
        self.paused_for = reason
        if self.suspended != self._paused_suspended:
            self._consumer.pause(*(self.suspended & self._assigned))
            if reason is None:
                self._consumer.resume(*((self._paused_suspended - self.suspended)
                                        & self._assigned))
            self._paused_suspended = set(self.suspended)

    def _full(self) -> str | None:
        options, tracker = self._options, self._tracker
        if tracker.in_flight() >= options.max_in_flight:
            return f"{options.max_in_flight} records in flight"
        if tracker.in_flight() and tracker.in_flight_bytes() >= options.max_in_flight_bytes:
            return f"{options.max_in_flight_bytes} bytes in flight"
        return None

    async def _take(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]],
                    generation: int | None) -> None:
        if generation is None or tp not in self._assigned:
            return  # revoked while the fetch was in flight
        consumed = epoch_ms()
        yielded = time.monotonic()
        for record in records:
            if time.monotonic() - yielded >= YIELD_EVERY_S:
                await asyncio.sleep(0)  # heartbeats first; a revocation meanwhile is seen below
                yielded = time.monotonic()
            if not self._tracker.is_current(tp, generation):
                return  # revoked (and maybe re-assigned) while we admitted: fetched again later
            if self._full():
                self._consumer.seek(tp, record.offset)  # not taken: read it again later
                self.hold_back()
                return
            key, value, headers = record.key, record.value, record.headers
            size = len(key or b"") + len(value or b"")
            if headers:  # kept with the record (trace context, its dead letter): counted too
                size += sum(len(name) + len(data or b"") for name, data in headers)
            source = Source(tp, record.offset, consumed, generation, key, value, headers)
            if not self._tracker.started(tp, generation, record.offset, size):
                return
            self.consumed += 1
            await self._admission.admit(source, size)
