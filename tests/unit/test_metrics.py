"""Worker metrics: names, units, per-worker registries, and what observing does to the output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from models.base import ModelOutput
from streams.analytics.sink.request_log import RequestLogRow
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings as ResultTimings
from streams.protocol.results import expired_result, ok_result
from streams.worker.health import Health
from streams.worker.jobs import Source
from streams.worker.metrics import WorkerMetrics
from streams.worker.stage_timings import Timings
from streams.worker.telemetry import Telemetry

EXPECTED = {  # family name -> type
    "streamserve_requests": "counter",
    "streamserve_inference_seconds": "histogram",
    "streamserve_queue_wait_seconds": "histogram",
    "streamserve_end_to_end_seconds": "histogram",
    "streamserve_kafka_wait_seconds": "histogram",
    "streamserve_batch_size": "histogram",
    "streamserve_in_flight_requests": "gauge",
    "streamserve_consumer_lag": "gauge",
    "streamserve_dlq": "counter",
    "streamserve_sink_spool_rows": "gauge",
    "streamserve_sink_insert_errors": "counter",
    "streamserve_sink_rows_written": "counter",
    "streamserve_model_load_seconds": "gauge",
    "streamserve_time_to_first_token_seconds": "histogram",
    "streamserve_time_per_output_token_seconds": "histogram",
    "streamserve_assigned_partitions": "gauge",
    "streamserve_worker_ready": "gauge",
}


def samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def values(observed: dict[tuple[str, Any], float]) -> dict[tuple[str, Any], float]:
    """The samples less the `_created` timestamps (they differ between two registries)."""
    return {key: value for key, value in observed.items() if not key[0].endswith("_created")}


def row(status: str = "ok", **extra: float) -> RequestLogRow:
    return RequestLogRow(
        "r1", "minilm", status, created_at=100.0, completed_at=100.5, kafka_wait_ms=20.0,
        queue_wait_ms=5.0, inference_ms=40.0, total_ms=80.0, batch_size=8, **extra,  # type: ignore[arg-type]
    )


def test_every_metric_has_the_prefix_and_a_unit_suffix_where_it_has_a_unit() -> None:
    body, content_type = WorkerMetrics().render()
    assert content_type.startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(body.decode())}
    assert {name: families.get(name) for name in EXPECTED} == EXPECTED
    for name, kind in families.items():
        assert name.startswith("streamserve_"), name
        if kind == "histogram" and name != "streamserve_batch_size":
            assert name.endswith("_seconds"), name
    counters = [name for name, kind in families.items() if kind == "counter"]
    lines = [line for line in body.decode().splitlines() if line.startswith(tuple(counters))]
    assert lines and all("_total" in line or "_created" in line for line in lines)


def test_workers_have_separate_registries() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.dlq("decode_error")
    assert samples(first)[("streamserve_dlq_total", (("reason", "decode_error"),))] == 1
    assert ("streamserve_dlq_total", (("reason", "decode_error"),)) not in samples(second)


def test_observing_a_result_updates_counters_and_histograms() -> None:
    metrics = WorkerMetrics()
    metrics.observe_row(row())
    metrics.observe_row(row("expired"))
    metrics.observe_batch("minilm", 8)
    got = samples(metrics)
    model = (("model", "minilm"),)
    assert got[("streamserve_requests_total", (("model", "minilm"), ("status", "ok")))] == 1
    assert got[("streamserve_requests_total", (("model", "minilm"), ("status", "expired")))] == 1
    assert got[("streamserve_inference_seconds_count", model)] == 1  # expired: no compute
    assert got[("streamserve_inference_seconds_sum", model)] == pytest.approx(0.04)
    assert got[("streamserve_end_to_end_seconds_count", model)] == 2
    assert got[("streamserve_kafka_wait_seconds_sum", model)] == pytest.approx(0.04)
    assert got[("streamserve_inference_seconds_bucket", (("le", "0.025"), *model))] == 0
    assert got[("streamserve_inference_seconds_bucket", (("le", "0.05"), *model))] == 1
    assert got[("streamserve_batch_size_bucket", (("le", "4.0"), *model))] == 0
    assert got[("streamserve_batch_size_bucket", (("le", "8.0"), *model))] == 1
    assert got[("streamserve_batch_size_bucket", (("le", "512.0"), *model))] == 1


def test_metrics_without_a_sink_match_the_request_log_path() -> None:
    """Without a sink the telemetry skips the log row; the metrics must not notice."""
    header = RequestHeader("r1", "minilm", None, created_at_ms=1000, received_at_ms=1020,
                           reply_topic=None, attributes={})
    ok = ok_result(header, ModelOutput(text="hi", tokens_in=3, tokens_out=5),
                   model_version="1", worker_id="w", completed_at_ms=1100,
                   timings=ResultTimings(queue_wait_ms=5.0, inference_ms=40.0), batch_size=2)
    ok["time_to_first_token_ms"] = 50.0
    expired = expired_result(header, worker_id="w", completed_at_ms=1200)
    source = Source(TopicPartition("t", 0), 7, 1020.0)

    class Rows:
        def add(self, row: RequestLogRow) -> None:
            self.last = row

    with_sink, without_sink = WorkerMetrics(), WorkerMetrics()
    for result in (ok, expired, ok):
        Telemetry(with_sink, Rows()).result_sent(result, source, 1030.0, 1050.0)  # type: ignore[arg-type]
        Telemetry(without_sink, None).result_sent(result, source, 1030.0, 1050.0)
    observed = samples(without_sink)
    assert values(observed) == values(samples(with_sink))
    model = (("model", "minilm"),)
    assert observed[("streamserve_time_per_output_token_seconds_count", model)] == 2
    assert observed[("streamserve_end_to_end_seconds_sum", model)] == pytest.approx(0.4)


def test_token_timings_come_from_the_row() -> None:
    timings = Timings.from_row(row(time_to_first_token_ms=30.0, tokens_out=11))
    assert timings.time_to_first_token_s == pytest.approx(0.03)
    assert timings.time_per_output_token_s == pytest.approx(0.005)  # (80 - 30) ms / 10 tokens
    assert Timings.from_row(row()).time_per_output_token_s is None


def test_gauges_lag_and_loads() -> None:
    metrics = WorkerMetrics()
    metrics.set_lag("inference.requests", 3, 120)
    metrics.set_assigned_partitions(2)
    metrics.model_loaded("minilm", 0.4)
    metrics.in_flight.inc(5)
    got = samples(metrics)
    lag_key = ("streamserve_consumer_lag", (("partition", "3"), ("topic", "inference.requests")))
    assert got[lag_key] == 120
    assert got[("streamserve_assigned_partitions", ())] == 2
    assert got[("streamserve_model_load_seconds", (("model", "minilm"),))] == 0.4
    assert got[("streamserve_in_flight_requests", ())] == 5
    metrics.forget_partition("inference.requests", 3)
    metrics.forget_partition("inference.requests", 3)  # twice is fine
    assert lag_key not in samples(metrics)


@dataclass
class FakeSink:
    spool_depth: int = 0
    rows_written: int = 0
    insert_errors: int = 0


def test_sink_counters_are_read_at_scrape_time() -> None:
    metrics, sink = WorkerMetrics(), FakeSink()
    assert samples(metrics)[("streamserve_sink_rows_written_total", ())] == 0
    metrics.bind_sink(sink)
    sink.spool_depth, sink.rows_written, sink.insert_errors = 7, 1000, 2
    got = samples(metrics)
    assert got[("streamserve_sink_spool_rows", ())] == 7
    assert got[("streamserve_sink_rows_written_total", ())] == 1000
    assert got[("streamserve_sink_insert_errors_total", ())] == 2


def test_readiness_drives_ready_and_the_gauge() -> None:
    metrics = WorkerMetrics(Health(("models_loaded", "partitions_assigned")))
    assert metrics.health.is_ready() == {
        "ready": False, "checks": {"models_loaded": False, "partitions_assigned": False},
        "holds": {}, "faults": {}}
    metrics.set_ready("models_loaded", True)
    metrics.set_ready("partitions_assigned", True)
    assert metrics.health.is_ready()["ready"] is True
    assert samples(metrics)[("streamserve_worker_ready", ())] == 1
    assert samples(metrics)[("streamserve_worker_alive", ())] == 1
    metrics.health.fail("task:lane-x", "crashed 6 times")
    assert not metrics.health.is_alive()
    assert metrics.health.health_body() == {"alive": False,
                                            "faults": {"task:lane-x": "crashed 6 times"}}
    assert samples(metrics)[("streamserve_worker_ready", ())] == 0
    assert samples(metrics)[("streamserve_worker_alive", ())] == 0


def test_a_client_chosen_model_name_is_a_label_only_when_served() -> None:
    metrics = WorkerMetrics()
    metrics.serve_models(frozenset({"minilm"}))
    for name in ("minilm", "x" * 300, "attacker-1", "attacker-2"):
        metrics.observe_result(name, "rejected", Timings(kafka_wait_s=0.01))
    got = samples(metrics)
    assert got[("streamserve_requests_total", (("model", "minilm"), ("status", "rejected")))] == 1
    assert got[("streamserve_requests_total", (("model", "unknown"), ("status", "rejected")))] == 3
    labels = {dict(key[1]).get("model") for key in got if key[0] == "streamserve_requests_total"}
    assert labels == {"minilm", "unknown"}
