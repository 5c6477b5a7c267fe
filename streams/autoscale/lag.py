"""Consumer lag of the service's group, per partition, from the Kafka admin API.

lag(p) = end offset(p) − committed offset(p); a partition the group never committed counts from
its beginning offset (workers use auto_offset_reset=earliest). Committed offsets trail the
workers' real positions by at most one commit interval (200 ms) plus their in-flight records, so
this lag includes the work already fetched but not yet answered — which is still work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.errors import StreamserveError
from streams.kafka.options import reader_options, security_options


@dataclass(frozen=True, slots=True)
class LagSnapshot:
    per_partition: dict[int, int]
    end_offsets_total: int  # Σ end offsets: its growth over time is the arrival rate

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())

    @property
    def partitions(self) -> int:
        return len(self.per_partition)


class LagReader:
    """Long-lived admin client + group-less consumer (for end offsets); `read()` per poll."""

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.requests_topic
        self._group = settings.consumer_group
        self._admin = AIOKafkaAdminClient(**security_options(settings))
        self._offsets = AIOKafkaConsumer(**reader_options(settings), group_id=None,
                                         enable_auto_commit=False)
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._admin.start()
        await self._offsets.start()

    async def close(self) -> None:
        await self._offsets.stop()
        await self._admin.close()

    async def _topic_partitions(self) -> list[TopicPartition]:
        if not self._partitions:
            described = await self._admin.describe_topics([self._topic])
            if not described or described[0]["error_code"] != 0:
                raise StreamserveError(f"topic {self._topic} does not exist (streamserve "
                                       "topics create)")
            self._partitions = sorted(TopicPartition(self._topic, p["partition"])
                                      for p in described[0]["partitions"])
        return self._partitions

    async def read(self) -> LagSnapshot:
        partitions = await self._topic_partitions()
        ends = await self._offsets.end_offsets(partitions)
        committed = await self._admin.list_consumer_group_offsets(self._group,
                                                                  partitions=partitions)
        missing = [tp for tp in partitions if committed.get(tp) is None
                   or committed[tp].offset < 0]
        starts = await self._offsets.beginning_offsets(missing) if missing else {}
        lag = {}
        for tp in partitions:
            done = committed.get(tp)
            position = starts.get(tp, done.offset if done else 0)
            lag[tp.partition] = max(0, ends[tp] - position)
        return LagSnapshot(lag, sum(ends.values()))
