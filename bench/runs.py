"""Measured runs: contender processes against requests in Kafka, results counted on the results
topic, throughput from the broker's append times of the results (one clock for everyone)."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import say
from bench.contenders.config import ContenderConfig
from bench.kafka_io import Topics, produce, read_results, wait_count
from bench.procs import Proc, any_alive, started, wait_http_ready

Rows = list[tuple[float, dict[str, Any]]]
WARM_FRACTION = 0.1


@dataclass
class Run:
    rate: float  # results/s in the steady window
    count: int
    seconds: float  # first to last result
    results: list[dict[str, Any]] = field(default_factory=list)

    def batch_sizes(self) -> list[int]:
        return [int(r["batch_size"]) for r in self.results if r.get("batch_size")]

    def mean_batch(self) -> float:
        sizes = self.batch_sizes()
        return statistics.mean(sizes) if sizes else math.nan


def steady_window_rate(rows: Rows, warm_fraction: float = WARM_FRACTION,
                       not_before_ms: float = 0.0, warm_results: int = 1) -> float:
    """Results/s after warm-up while every worker is answering.

    Warm-up: the first `warm_fraction` of results, at least `warm_results` of them (a batch
    engine answers its first batch all at once: the rate counts from the end of that batch to
    the end of the last one), and anything before `not_before_ms` (requests still being
    produced). With several workers the window also starts
    once the last of them answered its first request (the group settled) and ends when the
    first of them answered its last one (both busy all along). Bursts (a generation batch
    answers all its requests at once) count as completions at their time.
    """
    stamps = sorted(stamp for stamp, _ in rows)
    if len(stamps) < 2:
        return math.nan
    skip = max(math.ceil(len(stamps) * warm_fraction), warm_results)
    start = stamps[min(len(stamps) - 2, max(0, skip - 1))]
    later = [s for s in stamps if s >= not_before_ms]
    if len(later) >= 2:
        start = max(start, later[0])
    end = stamps[-1]
    by_worker: dict[str, list[float]] = {}
    for stamp, result in rows:
        by_worker.setdefault(str(result.get("worker_id")), []).append(stamp)
    if len(by_worker) > 1:
        start = max(start, *(min(s) for s in by_worker.values()))
        end = min(max(s) for s in by_worker.values())
    inside = sum(1 for s in stamps if start < s <= end)
    return inside / ((end - start) / 1000.0) if end > start else math.nan


def _run_of(rows: Rows, not_before_ms: float = 0.0, warm_results: int = 1) -> Run:
    stamps = [stamp for stamp, _ in rows]
    return Run(steady_window_rate(rows, not_before_ms=not_before_ms,
                                  warm_results=warm_results), len(rows),
               (max(stamps) - min(stamps)) / 1000.0, [result for _, result in rows])


def _results(topics: Topics, expected: int) -> Rows:
    return [(stamp, result) for stamp, result in
            read_results(topics.bootstrap, topics.results, expected, decode=True,
                         isolation=topics.isolation)
            if result is not None]


def _tails(procs: Sequence[Proc]) -> str:
    return "\n".join(f"--- {p.config.worker_id}:\n{p.log_tail(15)}" for p in procs)


def measure(label: str, configs: Sequence[ContenderConfig], topics: Topics, expected: int,
            workdir: Path, timeout_s: float, python: Path | None = None) -> Run:
    """Requests already in the topic: start the contenders together, wait for `expected`
    results, stop them."""
    started_at = time.monotonic()
    with started(configs, workdir, python) as procs:
        ready_s = time.monotonic() - started_at
        count = wait_count(topics.bootstrap, topics.results, expected, timeout_s,
                           alive=lambda: any_alive(procs), isolation=topics.isolation)
        if count < expected:
            raise RuntimeError(f"{label}: {count}/{expected} results after "
                               f"{time.monotonic() - started_at:.0f}s\n{_tails(procs)}")
        done_at = time.monotonic()
    run = _run_of(_results(topics, expected))
    say(f"  {label}: {run.rate:,.1f} results/s ({run.count} in {run.seconds:.1f}s; start "
        f"{ready_s:.0f}s, run {done_at - started_at - ready_s:.0f}s, stop "
        f"{time.monotonic() - done_at:.0f}s)")
    return run


def measure_bursts(label: str, configs: Sequence[ContenderConfig], topics: Topics,
                   bursts: Sequence[Sequence[tuple[bytes, bytes]]], workdir: Path,
                   timeout_s: float, python: Path | None = None,
                   warm_results: int = 1,
                   before_each: Callable[[int], None] | None = None,
                   after_each: Callable[[int], None] | None = None) -> list[Run]:
    """Start the contenders once (loading a real model costs seconds); per repetition produce
    one burst of requests, far faster than the service drains it, and wait until it is
    answered. A burst's results are told apart by their request-id prefix ("<prefix>-n").
    The window starts once the burst is fully produced: the producer shares the machine.
    `before_each(rep)` and `after_each(rep)` run while the contenders are idle, before and
    after each burst (e.g. the model's ceiling measured on both sides of the burst, under the
    same background load)."""
    runs: list[Run] = []
    started_at = time.monotonic()
    with started(configs, workdir, python) as procs:
        for config in configs:
            if config.kind == "ours":
                wait_http_ready(config.web_port)  # joined, partitions assigned
        say(f"  {label}: loaded, warm and ready in {time.monotonic() - started_at:.0f}s")
        total = 0
        for index, burst in enumerate(bursts):
            prefix = burst[0][0].decode().rsplit("-", 1)[0] + "-"
            if before_each is not None:
                before_each(index)
            asyncio.run(produce(topics.bootstrap, topics.requests, burst))
            produced_ms = time.time() * 1000.0
            total += len(burst)
            count = wait_count(topics.bootstrap, topics.results, total, timeout_s,
                               isolation=topics.isolation,
                               alive=lambda: any_alive(procs))
            if count < total:
                raise RuntimeError(f"{label}: {count}/{total} results\n{_tails(procs)}")
            run = _run_of([(stamp, result) for stamp, result in _results(topics, total)
                           if result["request_id"].startswith(prefix)], produced_ms,
                          warm_results)
            runs.append(run)
            say(f"  {label} rep {index + 1}/{len(bursts)}: {run.rate:,.1f} results/s "
                f"({run.count} in {run.seconds:.1f}s, mean batch {run.mean_batch():.1f})")
            if after_each is not None:
                after_each(index)
    return runs
