"""Stage 4, what users write first: a per-message faust agent and a Quix Streams application,
each calling the real MiniLM once per request, against our worker (stage 2's MiniLM figure,
measured in the same run)."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics
from bench.procs import config_for
from bench.runners import MINILM
from bench.runs import measure_bursts
from bench.workloads import embed_payloads, embed_texts

CONTENDERS = (("faust_agent", "faust per-message agent"), ("quix_app", "Quix Streams app"))


def run(ctx: Context) -> dict[str, Any]:
    n = ctx.mode.naive_n
    if not n:
        return {"skipped": f"no requests in {ctx.mode.name} mode"}
    say(f"stage naive: faust agent and Quix Streams app with MiniLM, {n} requests per rep")
    texts = embed_texts(None, 1024)
    kinds = [k for k in CONTENDERS if k[0] != "quix_app" or ctx.quix_python is not None]
    rates: dict[str, list[float]] = {}
    for kind, label in kinds:
        topics = Topics.fresh(ctx.bootstrap, kind.replace("_", "-"))
        topics.create()
        config = config_for(kind, MINILM, topics, ctx.workdir, kind, batch_size=1,
                            torch_threads=ctx.torch_threads)
        bursts = [embed_payloads(MINILM, texts, n, f"{kind[:5]}{r}")
                  for r in range(ctx.mode.reps)]
        python = ctx.quix_python if kind == "quix_app" else None
        runs = measure_bursts(label, [config], topics, bursts, ctx.workdir,
                              timeout_s=120.0 + n / 2.0, python=python)
        rates[kind] = [run.rate for run in runs]
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
