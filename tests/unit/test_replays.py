"""Replays as cost: a computed answer dropped (hand-over, fenced transaction) and computed again
is logged with its attempt number and counted in the metrics; uncomputed ones are not."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from models.base import ModelOutput
from streams.analytics.sink.request_log import RequestLogRow
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, expired_result, ok_result
from streams.worker.jobs import Source
from streams.worker.metrics import WorkerMetrics
from streams.worker.telemetry import Telemetry


class Rows:
    spool_depth, rows_written, insert_errors, alive, saturated = 0, 0, 0, True, None

    def __init__(self) -> None:
        self.rows: list[RequestLogRow] = []

    def add(self, row: RequestLogRow) -> None:
        self.rows.append(row)


def answer(request_id: str) -> dict[str, Any]:
    return ok_result(RequestHeader(request_id, "m", None, 1, 2.0), ModelOutput(),
                     model_version="1", worker_id="w", completed_at_ms=3,
                     timings=Timings(inference_ms=40.0), batch_size=4)


def test_a_redone_answer_is_logged_as_its_second_attempt_with_its_compute_share() -> None:
    sink, metrics = Rows(), WorkerMetrics()
    telemetry = Telemetry(metrics, sink)  # type: ignore[arg-type]
    source = Source(TopicPartition("req", 0), 7, 0.0, 1)
    telemetry.replayed(answer("r1"), "handover")
    telemetry.replayed(expired_result(RequestHeader("r2", "m", None, 1, 2.0), worker_id="w",
                                      completed_at_ms=3), "handover")  # nothing computed
    telemetry.result_sent(answer("r1"), source, None, None, "embed")
    telemetry.result_sent(answer("r3"), source, None, None, "embed")
    assert [(r.request_id, r.attempt, r.compute_ms) for r in sink.rows] == [
        ("r1", 2, 10.0), ("r3", 1, 10.0)]
    body = metrics.render()[0].decode()
    assert 'streamserve_replayed_computations_total{reason="handover"} 1.0' in body
    assert 'streamserve_replayed_compute_seconds_total{reason="handover"} 0.01' in body
