"""PartitionTransactions: what enters a transaction, in which order, and what an abort, a
refused record or fencing does. A transactional producer double records the calls; the real
broker is in tests/integration/test_exactly_once*.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError, ProducerFenced

from models.base import ModelOutput
from streams.protocol.fit import Outgoing
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, ok_result
from streams.worker.jobs import Source
from streams.worker.observer import NullObserver
from streams.worker.offsets import OffsetTracker
from streams.worker.options import EngineOptions
from streams.worker.outcomes import Outcome, Topics
from streams.worker.repair import Repairer
from streams.worker.transactions import PartitionTransactions

TP = TopicPartition("req", 0)


@dataclass
class TxnProducer:
    fail_send: dict[str, BaseException] = field(default_factory=dict)  # by key: raise in send
    fenced: bool = False
    committed: list[tuple[list[bytes | None], int]] = field(default_factory=list)
    aborted: int = 0
    _open: list[bytes | None] = field(default_factory=list)
    _offset: int = -1

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def begin_transaction(self) -> None:
        if self.fenced:
            raise ProducerFenced()
        self._open = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: Any = None) -> asyncio.Future[Any]:
        if key is not None and key.decode() in self.fail_send:
            raise self.fail_send.pop(key.decode())
        self._open.append(key)
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: dict[Any, int], group: str) -> None:
        self._offset = offsets[TP]

    async def commit_transaction(self) -> None:
        self.committed.append((self._open, self._offset))

    async def abort_transaction(self) -> None:
        self.aborted += 1


class Rig:
    def __init__(self) -> None:
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.assigned = {TP}
        self.producer = TxnProducer()
        self.released: list[set[TopicPartition]] = []
        self.sent: list[str] = []
        repairer = Repairer(self._never, lambda r, t, c: Outgoing(t, r["request_id"].encode(),
                                                                 b"shrunk", []),
                            Topics("res", "dlq", "tok"), 1 << 20, lambda r, c, m: r,
                            lambda o, p: None, lambda e: None, lambda t: None, lambda k: None)
        options = EngineOptions("w", "req", "res", "dlq", "tok", 8, 1.0, 100)

        async def release(tps: set[TopicPartition]) -> None:
            self.released.append(tps)

        async def rewind(tp: TopicPartition) -> None:
            pass

        self.txns = PartitionTransactions(options, self.tracker, self.assigned, repairer,
                                          NullObserver(), lambda tid: self.producer,  # type: ignore[arg-type,return-value]
                                          release, rewind, recover_after_s=3600)

    async def _never(self, record: Outgoing) -> Any:
        raise AssertionError("exactly-once never sends outside a transaction")

    def answer(self, offset: int, generation: int) -> None:
        source = Source(TP, offset, 0.0, generation, b"k", b"v")
        result = ok_result(RequestHeader(f"r{offset}", "m", None, 1, 2.0), ModelOutput(),
                           model_version="1", worker_id="w", completed_at_ms=3,
                           timings=Timings(), batch_size=1)
        record = Outgoing("res", f"r{offset}".encode(), b"value", [])
        self.txns.hold(Outcome(source, [record], result,
                               lambda published, o=offset: self.sent.append(f"r{o}")))
        self.tracker.finished(TP, generation, offset)


async def test_answers_enter_a_transaction_only_below_the_lowest_unanswered_offset() -> None:
    rig = Rig()
    await rig.txns.assign({TP})
    g = rig.tracker.assign(TP)
    for offset in range(5):
        rig.tracker.started(TP, g, offset)
    for offset in (0, 1, 3, 4):  # 2 is still computing
        rig.answer(offset, g)
    await rig.txns.commit(TP)
    assert rig.producer.committed == [([b"r0", b"r1"], 2)]
    assert rig.sent == ["r0", "r1"]  # reported only once committed
    rig.answer(2, g)
    await rig.txns.commit(TP)
    assert rig.producer.committed[-1] == ([b"r2", b"r3", b"r4"], 5)
    await rig.txns.commit(TP)  # nothing new: no empty transaction
    assert len(rig.producer.committed) == 2


async def test_a_record_refused_by_send_aborts_and_is_retried_in_reduced_form() -> None:
    rig = Rig()
    await rig.txns.assign({TP})
    g = rig.tracker.assign(TP)
    rig.tracker.started(TP, g, 0)
    rig.producer.fail_send["r0"] = MessageSizeTooLargeError()
    rig.answer(0, g)
    await rig.txns.commit(TP)
    assert rig.producer.aborted == 1 and rig.producer.committed == [] and rig.sent == []
    await rig.txns.commit(TP)  # from memory: nothing recomputed
    assert rig.producer.committed == [([b"r0"], 1)] and rig.sent == ["r0"]


async def test_a_fenced_producer_makes_nothing_visible_and_releases_the_partition() -> None:
    rig = Rig()
    await rig.txns.assign({TP})
    g = rig.tracker.assign(TP)
    rig.tracker.started(TP, g, 0)
    rig.answer(0, g)
    rig.producer.fenced = True
    await rig.txns.commit(TP)
    assert rig.producer.committed == [] and rig.sent == []
    assert TP in rig.txns.suspended and rig.released == [{TP}]
    rig.answer(1, g)  # late work of a fenced partition is dropped, not held
    assert rig.txns.held() == 0
    await rig.txns.close()
