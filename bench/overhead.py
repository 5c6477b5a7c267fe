"""Stage 3, framework overhead: the real worker with the no-op model against a hand-written
aiokafka loop doing the same work (serial and pipelined), same topics, same pre-loaded records.
Contenders alternate within each repetition so drifting machine load hits them alike."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics, preload
from bench.procs import config_for
from bench.runners import NOOP
from bench.runs import measure
from bench.workloads import embed_payloads, embed_texts

GOAL_RATIO = 0.5
GOAL_RATE = 20_000.0
CONTENDERS = (("ours", "ours", ""), ("raw", "raw", ""), ("raw_pipelined", "raw", "pipelined"))


def noop_topics(ctx: Context, label: str, n: int) -> Topics:
    topics = Topics.fresh(ctx.bootstrap, label)
    topics.create()
    preload(topics, embed_payloads(NOOP, embed_texts(None, 1024), n, label))
    return topics


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.mode.overhead_n
    say(f"stage overhead: no-op model, {n} pre-loaded records, ours vs raw aiokafka loops")
    topics = noop_topics(ctx, "overhead", n)
    contenders = [c for c in CONTENDERS if ctx.mode.raw_pipelined or c[0] != "raw_pipelined"]
    rates: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    for rep in range(ctx.mode.reps):
        for name, kind, variant in contenders:
            run_topics = topics.with_new_output()
            run_topics.create()
            config = config_for(kind, NOOP, run_topics, ctx.workdir, f"ovh-{name}-{rep}",
                                batch_size=1000, variant=variant)
            result = measure(f"overhead {name} rep {rep + 1}/{ctx.mode.reps}", [config],
                             run_topics, n, ctx.workdir, timeout_s=120.0 + n / 500.0)
            rates[name].append(result.rate)
    figs = {name: figure(values) for name, values in rates.items()}
    ours, raw = med(figs["ours"]), med(figs["raw"])
    # The goal is judged on the pairs (ours and raw run back to back in each repetition).
    per_rep = figure([ratio(o, r) for o, r in zip(rates["ours"], rates["raw"], strict=True)])
    out = {
        "records": n, "rate": figs,
        "ours_over_raw": med(per_rep), "ours_over_raw_per_rep": per_rep,
        "ours_over_raw_of_medians": ratio(ours, raw),
        "ours_over_raw_pipelined": ratio(ours, med(figs.get("raw_pipelined"))),
        "us_per_record": {name: 1e6 / med(fig) for name, fig in figs.items()},
        "goal": f"ours >= {GOAL_RATIO} x raw and >= {GOAL_RATE:,.0f} req/s",
        "pass_ratio": bool(med(per_rep) >= GOAL_RATIO),
        "pass_rate": bool(ours >= GOAL_RATE),
    }
    say(f"  overhead: ours {ours:,.0f}/s, raw {raw:,.0f}/s -> ours/raw = "
        f"{out['ours_over_raw']:.2f}")
    return out
