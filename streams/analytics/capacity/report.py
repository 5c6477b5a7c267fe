"""`streamserve plan`: read the measurements (bench JSON or request log), print the plan."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from streams.analytics.capacity.plan import Scaling, plan_text
from streams.analytics.capacity.sources import BENCH_RESULTS, Measured, from_bench, newest_bench
from streams.config import Settings
from streams.errors import ConfigError


def parse_counts(text: str) -> list[int]:
    """'1,2,4,8' -> [1, 2, 4, 8] (the CLI's --workers)."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise ConfigError(f"--workers wants worker counts like 1,2,4,8, got {text!r}")
    return counts


def parse_mix(text: str) -> list[tuple[str, float]]:
    """'minilm' -> [('minilm', 1.0)]; 'minilm=3,noop=1' -> shares 0.75 and 0.25."""
    parts: list[tuple[str, float]] = []
    for item in (p.strip() for p in text.split(",") if p.strip()):
        name, _, share = item.partition("=")
        try:
            value = float(share) if share else 1.0
        except ValueError:
            value = -1.0
        if not name or value <= 0:
            raise ConfigError(f"--model wants a model or a mix like minilm=0.9,noop=0.1, "
                              f"got {text!r}")
        parts.append((name.strip(), value))
    total = sum(v for _, v in parts)
    if not parts or len({n for n, _ in parts}) != len(parts):
        raise ConfigError(f"--model wants distinct models, got {text!r}")
    return [(name, value / total) for name, value in parts]


def _bench_path(bench: str, model: str) -> Path:
    return newest_bench(BENCH_RESULTS, model) if bench == "latest" else Path(bench)


def _request_log(settings: Settings, since: timedelta) -> Measured:
    from streams.analytics.capacity.sources import from_request_log
    from streams.analytics.migrations import migrate
    from streams.analytics.storage import connect

    client = connect(settings)
    try:
        migrate(client, settings.clickhouse_database)  # idempotent: an empty store has no rows
        return from_request_log(client, settings.clickhouse_database, since)
    finally:
        client.close()


def plan_report(settings: Settings, since: timedelta, counts: Sequence[int],
                target_rps: float | None = None, bench: str | None = None,
                model: str = "minilm", workers_per_gpu: int | None = None) -> str:
    """The plan from `bench` (a results JSON, or 'latest') or else the request log."""
    if target_rps is not None and target_rps <= 0:
        raise ConfigError(f"--target-rps wants requests/s > 0, got {target_rps:g}")
    if workers_per_gpu is not None and workers_per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu wants a count >= 1, got {workers_per_gpu}")
    if bench is not None:
        mix = parse_mix(model)
        measured = [(share, from_bench(_bench_path(bench, name), name)) for name, share in mix]
    else:
        measured = [(1.0, _request_log(settings, since))]
    for _, m in measured:
        if len(m.points) < 2:
            seen = ", ".join(f"N={p.workers}: {p.rate:,.1f} req/s" for p in m.points) or "none"
            return (f"{m.source}: throughput at {len(m.points)} worker count(s) ({seen}); a "
                    "scaling fit needs two or more. Measure with `streamserve bench --quick` "
                    "(its scaling stage), then `streamserve plan --bench latest`, or log a burst "
                    "served by `streamserve up --workers 2`.")
    scalings = [(share, Scaling.of(m)) for share, m in measured]
    return plan_text(scalings, counts, settings.topic_partitions, target_rps, workers_per_gpu)
