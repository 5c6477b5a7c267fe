"""Stage 6a, scaling: 1 vs 2 worker processes in one consumer group (4 partitions), with the
no-op and the MiniLM model. On 2 cores shared with the broker this shows contention more than
scaling; torch threads are split so that workers x threads = the threads of one worker."""

from __future__ import annotations

from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics, preload
from bench.pipeline import b_star
from bench.procs import config_for
from bench.runners import MINILM, NOOP
from bench.runs import measure
from bench.workloads import embed_payloads, embed_texts


def _scale(ctx: Context, model: str, n: int) -> dict[str, Any]:
    topics = Topics.fresh(ctx.bootstrap, f"scale-{model}")
    topics.create()
    preload(topics, embed_payloads(model, embed_texts(None, 1024), n, f"scale-{model}"))
    size = 1000 if model == NOOP else b_star(ctx, MINILM)
    rates: dict[int, list[float]] = {1: [], 2: []}
    for rep in range(ctx.mode.reps):
        for workers in (1, 2):
            run_topics = topics.with_new_output()
            run_topics.create()
            threads = max(1, ctx.torch_threads // workers)
            configs = [config_for("ours", model, run_topics, ctx.workdir,
                                  f"scale-{model}-{workers}w-{rep}-{w}", batch_size=size,
                                  torch_threads=threads) for w in range(workers)]
            result = measure(f"scaling {model} {workers} worker(s) rep {rep + 1}/"
                             f"{ctx.mode.reps}", configs, run_topics, n, ctx.workdir,
                             timeout_s=120.0 + n / (50.0 if model == MINILM else 2000.0))
            rates[workers].append(result.rate)
    one, two = figure(rates[1]), figure(rates[2])
    return {"requests": n, "one_worker": one, "two_workers": two,
            "speedup": ratio(med(two), med(one)),
            "torch_threads": {"1": ctx.torch_threads, "2": max(1, ctx.torch_threads // 2)}}


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"note": "2 cores shared by the broker, the workers and the "
                                   "benchmark: more workers cannot add cores here"}
    for model, n in ((NOOP, ctx.mode.scaling_noop_n), (MINILM, ctx.mode.scaling_minilm_n)):
        if n:
            say(f"stage scaling: {model}, 1 vs 2 workers, {n} requests per rep")
            out[model] = _scale(ctx, model, n)
            say(f"  scaling {model}: 2 workers / 1 worker = {out[model]['speedup']:.2f}")
    return out
