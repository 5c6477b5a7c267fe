"""Stage 4, what users write first: a per-message faust agent and a Quix Streams application,
each calling the real MiniLM once per request, against our worker (stage 2's MiniLM figure,
measured in the same run)."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics, preload
from bench.procs import config_for
from bench.runners import MINILM
from bench.runs import measure
from bench.workloads import embed_payloads, embed_texts

CONTENDERS = (("faust_agent", "faust per-message agent"), ("quix_app", "Quix Streams app"))


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.mode.naive_n
    say(f"stage naive: faust agent and Quix Streams app with MiniLM, {n} requests per rep")
    topics = Topics.fresh(ctx.bootstrap, "naive")
    topics.create()
    preload(topics, embed_payloads(MINILM, embed_texts(None, 1024), n, "naive"))
    kinds = [k for k in CONTENDERS if k[0] != "quix_app" or ctx.quix_python is not None]
    rates: dict[str, list[float]] = {kind: [] for kind, _ in kinds}
    for rep in range(ctx.mode.reps):
        for kind, label in kinds:
            run_topics = topics.with_new_output()
            run_topics.create()
            config = config_for(kind, MINILM, run_topics, ctx.workdir, f"{kind}-{rep}",
                                batch_size=1, torch_threads=ctx.torch_threads)
            python = ctx.quix_python if kind == "quix_app" else None
            result = measure(f"{label} rep {rep + 1}/{ctx.mode.reps}", [config], run_topics,
                             n, ctx.workdir, timeout_s=120.0 + n / 5.0, python=python)
            rates[kind].append(result.rate)
    ours = ctx.results.get("pipeline", {}).get(MINILM, {}).get("rate")
    out: dict[str, Any] = {"requests": n, "ours_rate": ours}
    for kind, label in CONTENDERS:
        if kind not in rates:
            out[kind] = {"skipped": "quixstreams env missing: run `python -m bench.quix_env`"}
            continue
        fig = figure(rates[kind])
        out[kind] = {"label": label, "rate": fig, "our_speedup": ratio(med(ours), med(fig))}
        say(f"  {label}: {med(fig):,.1f}/s -> ours is {out[kind]['our_speedup']:.1f}x")
    return out
