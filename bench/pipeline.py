"""Stage 2, pipeline efficiency: the real worker (max_batch_size = B*) draining pre-loaded
requests through Kafka, E = sustained results/s ÷ T_off(B*)."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics, preload
from bench.procs import config_for
from bench.runners import MINILM, SMOLLM
from bench.runs import measure
from bench.workloads import embed_payloads, embed_texts, generate_payloads, story_prompts

DEFAULT_B_STAR = {MINILM: 32, SMOLLM: 8}
GOAL_E = {MINILM: 0.90}


def b_star(ctx: Context, model: str) -> int:
    ceiling = ctx.results.get("ceiling", {}).get(model)
    return int(ceiling["b_star"]) if ceiling else DEFAULT_B_STAR[model]


def _one_model(ctx: Context, model: str, n: int) -> dict[str, Any]:
    size = b_star(ctx, model)
    topics = Topics.fresh(ctx.bootstrap, f"pipe-{model}")
    topics.create()
    if model == SMOLLM:
        payloads = generate_payloads(model, story_prompts(64), n, ctx.mode.new_tokens, "p")
        timeout = 60.0 + n * 3.0
    else:
        payloads = embed_payloads(model, embed_texts(None, 1024), n, "p")
        timeout = 60.0 + n / 20.0
    # The same sentences as the ceiling's (every word is one WordPiece: 32 tokens each).
    preload(topics, payloads)
    rates, batches, inference = [], [], []
    for rep in range(ctx.mode.reps):
        run_topics = topics.with_new_output()
        run_topics.create()
        config = config_for("ours", model, run_topics, ctx.workdir, f"pipe-{model}-{rep}",
                            batch_size=size, torch_threads=ctx.torch_threads,
                            new_tokens=ctx.mode.new_tokens)
        run = measure(f"pipeline {model} B*={size} rep {rep + 1}/{ctx.mode.reps}", [config],
                      run_topics, n, ctx.workdir, timeout, decode=True)
        rates.append(run.rate)
        batches.append(run.mean_batch())
        inference.append(statistics.median(r["timings"]["inference_ms"] for r in run.results))
    ceiling = ctx.results.get("ceiling", {}).get(model)
    t_off = med(ceiling["t_off_b_star"]) if ceiling else float("nan")
    rate = figure(rates)
    out: dict[str, Any] = {
        "b_star": size, "requests": n, "rate": rate, "t_off_b_star": t_off,
        "efficiency": ratio(med(rate), t_off),
        "efficiency_min_max": [ratio(rate["min"], t_off), ratio(rate["max"], t_off)],
        "mean_batch_size": figure(batches), "inference_ms_median": figure(inference),
    }
    if model in GOAL_E:
        out["goal"] = f"E >= {GOAL_E[model]:.2f}"
        out["pass"] = bool(out["efficiency"] >= GOAL_E[model])
    say(f"  pipeline {model}: {med(rate):,.1f}/s vs T_off(B*={size}) {t_off:,.1f}/s "
        f"-> E = {out['efficiency']:.3f}")
    return out


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ctx.mode.pipeline_minilm_n:
        say(f"stage pipeline: MiniLM, {ctx.mode.pipeline_minilm_n} requests per rep")
        out[MINILM] = _one_model(ctx, MINILM, ctx.mode.pipeline_minilm_n)
    if ctx.mode.pipeline_smollm_batches and ctx.mode.smollm_batches:
        n = b_star(ctx, SMOLLM) * ctx.mode.pipeline_smollm_batches
        say(f"stage pipeline: SmolLM2, {n} requests per rep")
        out[SMOLLM] = _one_model(ctx, SMOLLM, n)
    return out
