"""What the latency goal asks of an ideal worker: the same micro-batching policy fed by the
same Poisson arrivals, with batch times taken from the model's own ceiling curve and nothing
else (no Kafka, no event loop, no other process on the cores).

The latency stage reports this next to the measurement, so a miss can be split into what the
queueing itself implies (batch sizes swing under Poisson arrivals, and a batch's time grows
with its size on a CPU) and what the pipeline adds on top.
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import percentile


@dataclass(frozen=True)
class IdealLatency:
    p50_ms: float
    p99_ms: float
    batch_ms_median: float  # request-weighted, as the goal's "batch time that formed"
    batch_size_mean: float  # request-weighted, as the stage reports it
    bound_ms: float  # max_wait + 2 x batch_ms_median


def simulate(rate_per_s: float, batch_ms: Callable[[float], float], max_batch: int,
             max_wait_ms: float, requests: int = 100_000, seed: int = 1) -> IdealLatency:
    """Greedy micro-batching as `streams.policy.batching.MicroBatcher` does it: when the model is
    free, a batch forms once `max_batch` requests wait or the oldest has waited `max_wait_ms`,
    and takes up to `max_batch` of them in arrival order; one batch computes at a time."""
    rng = random.Random(seed)
    arrivals, now = [], 0.0
    for _ in range(requests):
        now += rng.expovariate(rate_per_s) * 1000.0
        arrivals.append(now)
    queue: deque[float] = deque()
    latencies: list[float] = []
    batch_times: list[float] = []  # one entry per request
    sizes: list[int] = []
    free_at, index = 0.0, 0
    while index < len(arrivals) or queue:
        if not queue:
            queue.append(arrivals[index])
            index += 1
        start = max(free_at, queue[0])
        # Requests arriving before the batch can form join it (up to max_batch).
        form_at = max(start, queue[0] + max_wait_ms)
        while index < len(arrivals) and len(queue) < max_batch and arrivals[index] <= form_at:
            queue.append(arrivals[index])
            index += 1
            if len(queue) == max_batch:
                form_at = max(start, queue[-1])
        size = min(len(queue), max_batch)
        took = batch_ms(size)
        done = form_at + took
        for _ in range(size):
            latencies.append(done - queue.popleft())
            batch_times.append(took)
            sizes.append(size)
        free_at = done
        while index < len(arrivals) and arrivals[index] <= free_at:  # arrived while computing
            queue.append(arrivals[index])
            index += 1
    median_batch = statistics.median(batch_times)
    return IdealLatency(p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99),
                        batch_ms_median=median_batch, batch_size_mean=statistics.mean(sizes),
                        bound_ms=max_wait_ms + 2 * median_batch)
