"""Small shared helpers: progress lines, repetition statistics, percentiles, rates."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

_STARTED = time.monotonic()


def say(message: str) -> None:
    """One progress line, stamped with the seconds since the benchmark started."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", flush=True)


def figure(values: Sequence[float]) -> dict[str, Any]:
    """A measured figure: the median of the repetitions, with min/max and every value kept."""
    if not values:
        return {"median": None, "min": None, "max": None, "values": [], "reps": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": [round(v, 6) for v in values], "reps": len(values)}


def med(fig: dict[str, Any] | None) -> float:
    """The median of a figure, NaN when it was not measured."""
    if not fig or fig.get("median") is None:
        return math.nan
    return float(fig["median"])


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def steady_rate(timestamps_ms: Sequence[float], warm_fraction: float = 0.1) -> float:
    """Items/s after warm-up, from the times the items were completed (any order).

    The first `warm_fraction` of completions is warm-up (group join, first fetch, caches); the
    rate is the completions after that moment over the time to the last one. Works for steady
    streams and for bursts (a generation batch completes all its items at once).
    """
    ordered = sorted(timestamps_ms)
    if len(ordered) < 2:
        return math.nan
    start_index = max(0, math.ceil(len(ordered) * warm_fraction) - 1)
    start = ordered[start_index]
    after = sum(1 for t in ordered if t > start)
    elapsed_s = (ordered[-1] - start) / 1000.0
    return after / elapsed_s if elapsed_s > 0 else math.nan


def ratio(numerator: float, denominator: float) -> float:
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator
