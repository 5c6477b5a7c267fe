"""One measured run: contender processes against pre-loaded requests, results counted on the
results topic, throughput from the broker's append times of the results."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import say, steady_rate
from bench.contenders.config import ContenderConfig
from bench.kafka_io import Topics, read_results, wait_count
from bench.procs import any_alive, started


@dataclass
class Run:
    rate: float  # results/s after warm-up
    count: int
    seconds: float  # first to last result
    results: list[dict[str, Any]] = field(default_factory=list)  # decoded, when asked

    def batch_sizes(self) -> list[int]:
        return [int(r["batch_size"]) for r in self.results if r.get("batch_size")]

    def mean_batch(self) -> float:
        sizes = self.batch_sizes()
        return statistics.mean(sizes) if sizes else float("nan")


def measure(label: str, configs: Sequence[ContenderConfig], topics: Topics, expected: int,
            workdir: Path, timeout_s: float, decode: bool = False,
            python: Path | None = None) -> Run:
    """Start the contenders together, wait until `expected` results are in, stop them."""
    started_at = time.monotonic()
    with started(configs, workdir, python) as procs:
        count = wait_count(topics.bootstrap, topics.results, expected, timeout_s,
                           alive=lambda: any_alive(procs))
        if count < expected:
            tails = "\n".join(f"--- {p.config.worker_id}:\n{p.log_tail(15)}" for p in procs)
            waited = time.monotonic() - started_at
            raise RuntimeError(f"{label}: {count}/{expected} results after {waited:.0f}s"
                               f"\n{tails}")
    rows = read_results(topics.bootstrap, topics.results, expected, decode=decode)
    stamps = [stamp for stamp, _ in rows]
    run = Run(steady_rate(stamps), len(rows), (max(stamps) - min(stamps)) / 1000.0,
              [r for _, r in rows if r is not None])
    say(f"  {label}: {run.rate:,.1f} results/s ({run.count} in {run.seconds:.1f}s, "
        f"{time.monotonic() - started_at:.0f}s with start/stop)")
    return run
