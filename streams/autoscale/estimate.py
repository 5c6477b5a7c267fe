"""Per-model cost, traffic mix and per-replica throughput from workers' counters. Pure.

What the worker exports (streams/worker/metrics.py, streams/worker/telemetry.py):
- `streamserve_requests_total{model,status}`: one per answered request (any status);
- `streamserve_inference_seconds{model}` (histogram): observed once per *request* that ran
  (status ok), with its whole batch's compute time — a batch of n that took t adds n·t to `_sum`
  and n to `_count`;
- `streamserve_batch_size{model}` (histogram): once per batch, `_sum` = requests, `_count` =
  batches.

The cost of a request is its share of its batch: Σ_batches t / Σ_batches n. From the counters,
mean batch time ≈ (Δinference_sum / Δinference_count) / mean batch size, where the mean batch
size Δbatch_sum / Δbatch_count is batch-weighted. That is exact when the batches of an interval
have one size (the case under a backlog: every batch is full) and otherwise errs towards a
higher cost (the request-weighted mean batch size is ≥ the batch-weighted one), i.e. towards
more replicas. ClickHouse has the exact figure: avg(inference_ms / batch_size) (history.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ModelCounters:
    requests: float = 0.0  # requests_total, all statuses
    inference_sum_s: float = 0.0
    inference_count: float = 0.0
    batch_sum: float = 0.0  # requests that went through batches
    batch_count: float = 0.0  # batches

    def minus(self, earlier: ModelCounters) -> ModelCounters:
        return ModelCounters(*(getattr(self, f.name) - getattr(earlier, f.name)
                               for f in fields(self)))

    def plus(self, other: ModelCounters) -> ModelCounters:
        return ModelCounters(*(getattr(self, f.name) + getattr(other, f.name)
                               for f in fields(self)))

    @property
    def busy_s(self) -> float:
        """Seconds the model computed: Σ batch times, from the request-weighted sum."""
        if self.inference_count <= 0:
            return 0.0
        mean_batch = self.batch_sum / self.batch_count if self.batch_count > 0 else 1.0
        return self.inference_sum_s / max(1.0, mean_batch)

    @property
    def cost_s(self) -> float | None:
        """Model-seconds per request that ran; None without data."""
        return self.busy_s / self.inference_count if self.inference_count > 0 else None


Sample = Mapping[str, ModelCounters]  # model -> counters of one worker process at one scrape


def increase(before: Sample | None, after: Sample) -> dict[str, ModelCounters]:
    """Counter increase between two scrapes of one worker; a restart (a counter went down, or
    no earlier scrape) counts from zero, as Prometheus' `increase()` does."""
    out: dict[str, ModelCounters] = {}
    for model, now in after.items():
        then = (before or {}).get(model, ModelCounters())
        delta = now.minus(then)
        out[model] = now if any(getattr(delta, f.name) < 0 for f in fields(delta)) else delta
    return out


def total(samples: Iterable[Mapping[str, ModelCounters]]) -> dict[str, ModelCounters]:
    out: dict[str, ModelCounters] = {}
    for sample in samples:
        for model, counters in sample.items():
            out[model] = out.get(model, ModelCounters()).plus(counters)
    return out


def _ewma(old: float | None, new: float, alpha: float) -> float:
    return new if old is None else alpha * new + (1 - alpha) * old


class CostModel:
    """Smoothed per-model cost, traffic mix and per-replica throughput.

    Throughput is model-seconds a replica completes per wall second. It is only *measured*
    while the replicas were saturated (the caller says so: enough backlog to keep them busy for
    the whole interval); an unsaturated interval shows demand, not capacity, and can only raise
    the estimate. Until then the configured prior holds.
    """

    def __init__(self, prior_throughput: float, alpha: float = 0.5) -> None:
        self.alpha = alpha
        self.cost_s: dict[str, float] = {}
        self.mix: dict[str, float] = {}
        self.throughput = prior_throughput
        self.measured = False  # True once a saturated interval replaced the prior

    def seed(self, cost_s: Mapping[str, float], mix: Mapping[str, float]) -> None:
        """Start from history (ClickHouse) before any worker reported."""
        self.cost_s.update(cost_s)
        self.mix.update(mix)

    def learn_costs(self, delta: Mapping[str, ModelCounters]) -> None:
        for model, counters in delta.items():
            cost = counters.cost_s
            if cost is not None:
                self.cost_s[model] = _ewma(self.cost_s.get(model), cost, self.alpha)
        answered = sum(c.requests for c in delta.values())
        if answered > 0:
            for model in set(self.mix) | set(delta):
                share = delta[model].requests / answered if model in delta else 0.0
                self.mix[model] = _ewma(self.mix.get(model), share, self.alpha)

    def learn_throughput(self, delta: Mapping[str, ModelCounters], seconds: float,
                         replicas: int, saturated: bool) -> None:
        if seconds <= 0 or replicas <= 0:
            return
        measured = sum(c.busy_s for c in delta.values()) / seconds / replicas
        if saturated and measured > 0:
            old = self.throughput if self.measured else None
            self.throughput, self.measured = _ewma(old, measured, self.alpha), True
        elif measured > self.throughput:
            self.throughput = measured
