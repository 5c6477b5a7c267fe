"""Stage 6b, the ClickHouse request-log sink's cost: the real worker with the no-op model, with
and without the sink (embedded chDB in the worker process, as `streamserve worker` runs it)."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.overhead import noop_topics
from bench.procs import config_for
from bench.runners import NOOP
from bench.runs import measure


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.mode.sink_n
    if not n:
        return {"skipped": f"no requests in {ctx.mode.name} mode"}
    say(f"stage sink: no-op worker with and without the ClickHouse sink, {n} records")
    topics = noop_topics(ctx, "sink", n)
    rates: dict[str, list[float]] = {"without": [], "with": []}
    for rep in range(ctx.mode.reps):
        for variant in ("without", "with"):
            run_topics = topics.with_new_output()
            run_topics.create()
            sink_dir = str(ctx.workdir / f"sink-{rep}") if variant == "with" else None
            config = config_for("ours", NOOP, run_topics, ctx.workdir,
                                f"sink-{variant}-{rep}", batch_size=1000, sink_dir=sink_dir)
            result = measure(f"sink {variant} rep {rep + 1}/{ctx.mode.reps}", [config],
                             run_topics, n, ctx.workdir, timeout_s=120.0 + n / 500.0)
            rates[variant].append(result.rate)
    without, with_sink = figure(rates["without"]), figure(rates["with"])
    cost_us = 1e6 / med(with_sink) - 1e6 / med(without)
    out = {"records": n, "without": without, "with": with_sink,
           "with_over_without": ratio(med(with_sink), med(without)),
           "cost_us_per_request": cost_us}
    say(f"  sink: {med(without):,.0f}/s without, {med(with_sink):,.0f}/s with "
        f"-> {cost_us:.1f} µs per request")
    return out
