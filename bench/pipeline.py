"""Stage 2, pipeline efficiency: the real worker (max_batch_size = B*) draining bursts of
requests through Kafka (one burst per repetition, produced far faster than it is served),
E = sustained results/s ÷ T_off(B*)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.ceiling import batch_ms_at, minilm_once, minilm_runner
from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics
from bench.procs import config_for
from bench.runners import MINILM, SMOLLM, engine_of
from bench.runs import measure_bursts
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
    reps = range(ctx.mode.reps)
    if model == SMOLLM:
        prompts = story_prompts(64)
        bursts = [generate_payloads(model, prompts, n, ctx.mode.new_tokens, f"p{r}")
                  for r in reps]
        timeout = 60.0 + n * 5.0
    else:  # the same 32-token sentences as the ceiling's
        texts = embed_texts(None, 1024)
        bursts = [embed_payloads(model, texts, n, f"p{r}") for r in reps]
        timeout = 60.0 + n / 10.0
    config = config_for("ours", model, topics, ctx.workdir, f"pipe-{model}", batch_size=size,
                        torch_threads=ctx.torch_threads, new_tokens=ctx.mode.new_tokens)
    # MiniLM: T_off(B*) again right before and right after each burst, in this process while
    # the worker idles; each repetition's E divides the burst's rate by the mean of the two, so
    # both figures of a ratio are taken under the same (drifting) background load.
    bracket: dict[str, list[float]] = {"before": [], "after": []}
    before_each = after_each = None
    if model == MINILM:
        runner, alone_texts = minilm_runner(ctx, size)

        def alone(side: str) -> Callable[[int], None]:
            def measure_alone(rep: int) -> None:
                per_s, _ = minilm_once(runner, alone_texts, size, ctx.mode.ceiling_min_s)
                bracket[side].append(per_s)
                say(f"  ceiling minilm B={size} {side} rep {rep + 1}: {per_s:,.1f} seq/s")
            return measure_alone

        before_each, after_each = alone("before"), alone("after")

    # Generation answers a batch's requests together: warm-up is the first batch, so the rate
    # is B* per batch time, the unit of the ceiling's T_off.
    runs = measure_bursts(f"pipeline {model} B*={size}", [config], topics, bursts, ctx.workdir,
                          timeout, warm_results=size if model == SMOLLM else 1,
                          before_each=before_each, after_each=after_each)
    if model == MINILM:
        runner.close()
    rates = [run.rate for run in runs]
    batches = [run.mean_batch() for run in runs]
    inference = [statistics.median(r["timings"]["inference_ms"] for r in run.results)
                 for run in runs]
    ceiling = ctx.results.get("ceiling", {}).get(model)
    t_off = med(ceiling["t_off_b_star"]) if ceiling else float("nan")
    rate = figure(rates)
    out: dict[str, Any] = {
        "b_star": size, "requests": n, "rate": rate, "t_off_b_star": t_off,
        "efficiency": ratio(med(rate), t_off),
        "efficiency_min_max": [ratio(rate["min"], t_off), ratio(rate["max"], t_off)],
        "mean_batch_size": figure(batches), "inference_ms_median": figure(inference),
    }
    # Where E goes: the share of wall time the model computes (duty) and how much slower one
    # batch runs inside the worker than alone (slowdown); E ~= duty / slowdown.
    # (Static batches only: a continuous engine's requests overlap, their times do not add.)
    out["engine"] = engine_of(model)
    if out["engine"] == "static":
        out["model_duty"] = figure([r * ms / 1000.0 / b for r, ms, b in
                                    zip(rates, inference, batches, strict=True)])
    if ceiling and out["engine"] == "static":
        alone_ms = batch_ms_at(ceiling, med(out["mean_batch_size"]))
        out["batch_ms_alone"] = alone_ms
        out["model_slowdown_in_worker"] = ratio(med(out["inference_ms_median"]), alone_ms)
    paired = [(b + a) / 2 for b, a in zip(bracket["before"], bracket["after"], strict=True)]
    if paired:
        out["t_off_before"], out["t_off_after"] = (figure(bracket["before"]),
                                                   figure(bracket["after"]))
        per_rep = [ratio(r, t) for r, t in zip(rates, paired, strict=True)]
        # The same split against the T_off taken next to each burst: duty x (1 / slowdown).
        out["model_slowdown_vs_paired"] = figure([
            ratio(ms, size / t * 1000.0) for ms, t in zip(inference, paired, strict=True)])
        out["t_off_paired"] = figure(paired)
        out["efficiency_paired"] = figure(per_rep)
        out["efficiency_stage1"] = out["efficiency"]
        out["efficiency"] = med(out["efficiency_paired"])
        out["efficiency_min_max"] = [out["efficiency_paired"]["min"],
                                     out["efficiency_paired"]["max"]]
    if model in GOAL_E:
        out["goal"] = f"E >= {GOAL_E[model]:.2f}"
        out["pass"] = bool(out["efficiency"] >= GOAL_E[model])
    say(f"  pipeline {model}: {med(rate):,.1f}/s vs T_off(B*={size}) {t_off:,.1f}/s "
        f"-> E = {out['efficiency']:.3f}" + (
            f" (model busy {med(out['model_duty']):.0%} of the time, a batch "
            f"{out.get('model_slowdown_in_worker', float('nan')):.2f}x its time alone)"
            if "model_duty" in out else f" ({out['engine']} engine)"))
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
