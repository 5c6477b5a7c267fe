"""Prometheus metrics of a worker: the ONLY module that creates Prometheus objects.

Every metric lives in the worker's own `CollectorRegistry` (never the global one), so tests and
in-process multi-worker setups can build several `WorkerMetrics` side by side. Names carry the
`streamserve_` prefix and their unit (`_seconds`, `_total`). Latency histograms are observed once
per request (request-weighted); `streamserve_batch_size` once per batch. The request-log sink's
counters are read at scrape time from its attributes, so the sink never imports prometheus.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams.analytics.sink.request_log import RequestLogRow
from streams.worker.health import Health
from streams.worker.stage_timings import Timings

PREFIX = "streamserve_"
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0, 60.0)
TOKEN_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Around the commit interval (100 ms by default): what the hold-back delay is made of.
HOLDBACK_BUCKETS_S = (0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
                      0.75, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = tuple(float(2**i) for i in range(10))  # 1, 2, 4, ..., 512
UNKNOWN_MODEL = "unknown"


class SinkStats(Protocol):
    """What the metrics read from the request-log sink (RequestLogSink satisfies it)."""

    @property
    def spool_depth(self) -> int: ...

    rows_written: int
    insert_errors: int


# (Timings field, histogram name, help, buckets): one per-request latency histogram each
_STAGES = (
    ("kafka_wait_s", "kafka_wait_seconds", "Client created until consumed", LATENCY_BUCKETS_S),
    ("queue_wait_s", "queue_wait_seconds", "Consumed until its batch started", LATENCY_BUCKETS_S),
    ("inference_s", "inference_seconds", "Model compute of its batch", LATENCY_BUCKETS_S),
    ("end_to_end_s", "end_to_end_seconds", "Client created until result sent", LATENCY_BUCKETS_S),
    ("time_to_first_token_s", "time_to_first_token_seconds", "Created until first token",
     LATENCY_BUCKETS_S),
    ("time_per_output_token_s", "time_per_output_token_seconds", "Decode time per later token",
     TOKEN_BUCKETS_S),
)


class WorkerMetrics:
    def __init__(self, health: Health | None = None) -> None:
        self.registry = reg = CollectorRegistry()
        self.health = health or Health()
        # Label values a client can choose (the `model` of a request) are kept only when the
        # model is served; anything else is counted under UNKNOWN_MODEL (bounded cardinality).
        self._served: frozenset[str] | None = None
        self._sink: SinkStats | None = None
        self.stages = {field: Histogram(PREFIX + name, doc, ["model"], buckets=buckets,
                                        registry=reg) for field, name, doc, buckets in _STAGES}
        self.requests = Counter(PREFIX + "requests_total", "Requests answered, by final status",
                                ["model", "status"], registry=reg)
        self.batch_size = Histogram(PREFIX + "batch_size", "Requests per model batch", ["model"],
                                    buckets=BATCH_SIZE_BUCKETS, registry=reg)
        self.in_flight = Gauge(PREFIX + "in_flight_requests", "Consumed, not yet answered",
                               registry=reg)
        self.lag = Gauge(PREFIX + "consumer_lag", "Messages behind the log end",
                         ["topic", "partition"], registry=reg)
        self.shed_total = Counter(PREFIX + "shed_total",
                                  "Requests refused early: they would miss their deadline",
                                  ["model"], registry=reg)
        self.dlq_total = Counter(PREFIX + "dlq_total", "Records sent to the dead-letter topic",
                                 ["reason"], registry=reg)
        self.model_load = Gauge(PREFIX + "model_load_seconds", "Duration of the last model load",
                                ["model"], registry=reg)
        self.assigned = Gauge(PREFIX + "assigned_partitions", "Partitions this worker owns",
                              registry=reg)
        self.ready = Gauge(PREFIX + "worker_ready", "1 when /ready answers 200", registry=reg)
        self.alive = Gauge(PREFIX + "worker_alive", "1 when /health answers 200", registry=reg)
        self.restarts = Counter(PREFIX + "task_restarts_total",
                                "Supervised worker tasks restarted after a crash", ["task"],
                                registry=reg)
        self.model_failures = Counter(PREFIX + "model_failures_total",
                                      "Failed model calls, by kind (error, timeout, transient)",
                                      ["model", "kind"], registry=reg)
        self.breaker_open = Gauge(PREFIX + "circuit_open", "1 while a model's breaker is open",
                                  ["model"], registry=reg)
        self.handover = Histogram(PREFIX + "handover_seconds",
                                  "Time spent handing partitions over in a rebalance",
                                  buckets=LATENCY_BUCKETS_S, registry=reg)
        self.transactions = Counter(PREFIX + "transactions_total",
                                    "Exactly-once transactions by outcome (committed, aborted, "
                                    "fenced)", ["outcome"], registry=reg)
        self.replays = Counter(PREFIX + "replayed_computations_total",
                               "Computed answers dropped, to be computed again", ["reason"],
                               registry=reg)
        self.replay_compute = Counter(PREFIX + "replayed_compute_seconds_total",
                                      "Compute time of dropped answers", ["reason"], registry=reg)
        self.holdback = Histogram(PREFIX + "holdback_seconds",
                                  "Exactly-once: a finished answer waiting for its commit",
                                  buckets=HOLDBACK_BUCKETS_S, registry=reg)
        self.abandoned_total = Counter(PREFIX + "abandoned_results_total",
                                       "Results of revoked partitions dropped (redone by their "
                                       "new owner)", registry=reg)
        self.reduced = Counter(PREFIX + "reduced_records_total",
                               "Derived records cut to fit what Kafka accepts", ["topic_kind"],
                               registry=reg)
        reg.register(_SinkCollector(self))
        # Labelled children, looked up once: `.labels()` costs more than the observation.
        self._request_counters: dict[tuple[str, str], Any] = {}
        self._stage_children: dict[str, tuple[tuple[str, Any], ...]] = {}

    def serve_models(self, names: frozenset[str]) -> None:
        """The model names that may appear as a label value (the served ones)."""
        self._served = names

    def model_label(self, model: str) -> str:
        return model if self._served is None or model in self._served else UNKNOWN_MODEL

    def observe_result(self, model: str, status: str, timings: Timings) -> None:
        """One answered request (any status); stages that did not happen are skipped."""
        model = self.model_label(model)
        counter = self._request_counters.get((model, status))
        if counter is None:
            counter = self._request_counters[(model, status)] = self.requests.labels(model,
                                                                                     status)
        counter.inc()
        stages = self._stage_children.get(model)
        if stages is None:
            stages = self._stage_children[model] = tuple(
                (field, histogram.labels(model)) for field, histogram in self.stages.items())
        for field, child in stages:
            if (value := getattr(timings, field)) is not None:
                child.observe(value)

    def observe_row(self, row: RequestLogRow) -> None:
        self.observe_result(row.model, row.status, Timings.from_row(row))

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_size.labels(self.model_label(model)).observe(size)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(topic, str(partition)).set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition revoked by a rebalance (another worker owns it)."""
        with contextlib.suppress(KeyError):
            self.lag.remove(topic, str(partition))

    def shed(self, model: str) -> None:
        self.shed_total.labels(self.model_label(model)).inc()

    def task_restarted(self, task: str) -> None:
        self.restarts.labels(task).inc()

    def model_failed(self, model: str, kind: str) -> None:
        self.model_failures.labels(self.model_label(model), kind).inc()

    def set_breaker(self, model: str, is_open: bool) -> None:
        self.breaker_open.labels(self.model_label(model)).set(1 if is_open else 0)

    def replayed(self, reason: str, compute_s: float) -> None:
        self.replays.labels(reason).inc()
        self.replay_compute.labels(reason).inc(compute_s)

    def transaction(self, outcome: str, answers: int) -> None:
        self.transactions.labels(outcome).inc()

    def abandoned(self, count: int) -> None:
        self.abandoned_total.inc(count)

    def record_reduced(self, topic_kind: str) -> None:
        self.reduced.labels(topic_kind).inc()

    def dlq(self, reason: str) -> None:
        self.dlq_total.labels(reason).inc()

    def model_loaded(self, model: str, seconds: float) -> None:
        self.model_load.labels(model).set(seconds)

    def set_assigned_partitions(self, count: int) -> None:
        self.assigned.set(count)

    def set_ready(self, check: str, ok: bool) -> None:
        self.health.set(check, ok)
        self.ready.set(1 if self.health.ready else 0)

    def bind_sink(self, sink: SinkStats) -> None:
        self._sink = sink

    def render(self) -> tuple[bytes, str]:
        """Exposition body and content type of `/metrics` (text format 0.0.4)."""
        self.ready.set(1 if self.health.ready else 0)
        self.alive.set(1 if self.health.alive else 0)
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


class _SinkCollector:
    """Reads the bound sink's counters at scrape time; zeros before a sink is bound."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        sink = self._metrics._sink
        yield GaugeMetricFamily(PREFIX + "sink_spool_rows", "Request-log rows in the local spool",
                                value=sink.spool_depth if sink else 0)
        yield CounterMetricFamily(PREFIX + "sink_insert_errors_total", "Failed ClickHouse inserts",
                                  value=sink.insert_errors if sink else 0)
        yield CounterMetricFamily(PREFIX + "sink_rows_written_total",
                                  "Request-log rows ClickHouse accepted",
                                  value=sink.rows_written if sink else 0)
