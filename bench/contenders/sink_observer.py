"""A WorkerObserver that writes one request-log row per result to the ClickHouse sink (chDB),
for the sink's cost per request. Mirrors what the worker's own wiring is expected to do: build
the row on the event loop, let the sink's thread insert blocks."""

from __future__ import annotations

from typing import Any

from streams.config import Settings
from streams.sinks.clickhouse import RequestLogSink
from streams.sinks.request_log import RequestLogRow
from streams.sinks.target import open_request_log_sink
from streams.worker.jobs import Source
from streams.worker.observer import NullObserver


class SinkObserver(NullObserver):
    def __init__(self, sink: RequestLogSink) -> None:
        self.sink = sink

    @classmethod
    def open(cls, settings: Settings, name: str) -> SinkObserver:
        return cls(open_request_log_sink(settings, name=name))

    def result_sent(self, result: dict[str, Any], source: Source,
                    batch_started_at_ms: float | None,
                    inference_started_at_ms: float | None) -> None:
        timings = result["timings"]
        error = result.get("error") or {}
        self.sink.add(RequestLogRow(
            request_id=result["request_id"], model=result["model"], status=result["status"],
            created_at=result["created_at"] / 1000.0,
            completed_at=result["completed_at"] / 1000.0,
            model_version=result.get("model_version") or "", error_code=error.get("code", ""),
            partition=source.tp.partition, offset=source.offset,
            worker=result.get("worker_id") or "", batch_size=result.get("batch_size") or 0,
            tokens_in=result.get("tokens_in") or 0, tokens_out=result.get("tokens_out") or 0,
            consumed_at=source.consumed_at_ms / 1000.0,
            batch_started_at=(batch_started_at_ms or 0.0) / 1000.0,
            inference_started_at=(inference_started_at_ms or 0.0) / 1000.0,
            kafka_wait_ms=timings["kafka_wait_ms"], queue_wait_ms=timings["queue_wait_ms"],
            batch_wait_ms=timings["batch_wait_ms"], inference_ms=timings["inference_ms"],
            total_ms=timings["total_ms"]))

    def close(self) -> None:
        self.sink.close(timeout=60)
