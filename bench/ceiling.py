"""Stage 1, the ceiling: each model alone in a tight loop (no Kafka, no service), T_off(B) for
every batch size B; B* = the B with the best median throughput."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

from bench.common import figure, say
from bench.context import Context
from bench.runners import MINILM, SMOLLM, bench_spec, engine_of, load_model
from bench.workloads import embed_inputs, embed_texts, generate_inputs, story_prompts
from models.base import ModelInput, ModelRunner

EMBED_TOKENS = 32


def _timed(runner: ModelRunner, task: Any, batches: Sequence[Sequence[ModelInput]],
           min_s: float, min_calls: int) -> tuple[float, float, int]:
    """(items/s, ms per call, output tokens) over at least `min_s` and `min_calls` calls."""
    calls = items = tokens = 0
    started = time.perf_counter()
    while True:
        batch = batches[calls % len(batches)]
        outputs = runner.run(task, batch)
        calls += 1
        items += len(batch)
        tokens += sum(o.tokens_out for o in outputs)
        elapsed = time.perf_counter() - started
        if elapsed >= min_s and calls >= min_calls:
            return items / elapsed, elapsed / calls * 1000.0, tokens


def _best(curve: dict[str, Any]) -> str:
    return max(curve, key=lambda b: float(curve[b]["per_s"]["median"]))


def minilm_runner(ctx: Context, size: int) -> tuple[ModelRunner, list[str]]:
    runner = load_model(MINILM, size, ctx.torch_threads)
    texts = embed_texts(lambda t: runner.count_tokens(ModelInput("n", text=t)), 1024,
                        EMBED_TOKENS)
    return runner, texts


def minilm_once(runner: ModelRunner, texts: Sequence[str], size: int,
                min_s: float) -> tuple[float, float]:
    """One warmed-up measurement at batch size `size`: (sequences/s, ms per batch)."""
    # 8 different batches, the texts reused cyclically (B up to 1024 on a GPU: 8192 inputs).
    batches = [embed_inputs([texts[(i + j) % len(texts)] for j in range(size)])
               for i in range(0, size * 8, size)]
    runner.run("embed", batches[0])  # warm-up for this shape
    per_s, batch_ms, _ = _timed(runner, "embed", batches, min_s, 3)
    return per_s, batch_ms


def batch_prompts(prompts: Sequence[str], size: int) -> list[str]:
    return [prompts[j % len(prompts)] for j in range(size)]


def minilm_ceiling(ctx: Context) -> dict[str, Any]:
    mode = ctx.mode
    runner, texts = minilm_runner(ctx, max(mode.minilm_batches))
    samples: dict[int, dict[str, list[float]]] = {b: {"per_s": [], "batch_ms": []}
                                                  for b in mode.minilm_batches}
    for rep in range(mode.reps):
        for size in mode.minilm_batches:
            per_s, batch_ms = minilm_once(runner, texts, size, mode.ceiling_min_s)
            samples[size]["per_s"].append(per_s)
            samples[size]["batch_ms"].append(batch_ms)
            say(f"  ceiling minilm B={size} rep {rep + 1}/{mode.reps}: {per_s:,.1f} seq/s "
                f"({batch_ms:.1f} ms/batch)")
    runner.close()
    curve = {str(b): {"per_s": figure(s["per_s"]), "batch_ms": figure(s["batch_ms"])}
             for b, s in samples.items()}
    best = _best(curve)
    return {"unit": "sequences/s", "input_tokens": EMBED_TOKENS, "curve": curve,
            "b_star": int(best), "t_off_b_star": curve[best]["per_s"]}


def smollm_ceiling(ctx: Context) -> dict[str, Any]:
    mode = ctx.mode
    runner = load_model(SMOLLM, max(mode.smollm_batches), ctx.torch_threads)
    prompts = story_prompts(64)
    samples: dict[int, dict[str, list[float]]] = {
        b: {"per_s": [], "tokens_per_s": [], "batch_ms": []} for b in mode.smollm_batches}
    for rep in range(mode.reps):
        for size in mode.smollm_batches:
            batch = generate_inputs([prompts[(rep * size + j) % len(prompts)]
                                     for j in range(size)], mode.new_tokens)
            runner.run("generate", generate_inputs(batch_prompts(prompts, size), 2))  # warm-up
            per_s, batch_ms, tokens = _timed(runner, "generate", [batch], 0.0, 1)
            tokens_per_s = tokens / (batch_ms / 1000.0)
            samples[size]["per_s"].append(per_s)
            samples[size]["tokens_per_s"].append(tokens_per_s)
            samples[size]["batch_ms"].append(batch_ms)
            say(f"  ceiling smollm2 B={size} rep {rep + 1}/{mode.reps}: {per_s:.2f} req/s, "
                f"{tokens_per_s:.1f} tok/s ({batch_ms / 1000:.1f} s/batch)")
    runner.close()
    curve = {str(b): {k: figure(v) for k, v in s.items()} for b, s in samples.items()}
    best = _best(curve)
    return {"unit": "requests/s", "new_tokens": mode.new_tokens, "engine": engine_of(SMOLLM),
            "curve": curve,
            "b_star": int(best), "t_off_b_star": curve[best]["per_s"],
            "tokens_per_s_b_star": curve[best]["tokens_per_s"]}


def run(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"torch_threads": ctx.torch_threads,
                           "device": bench_spec(MINILM).device}
    say(f"stage ceiling: MiniLM, B in {list(ctx.mode.minilm_batches)}")
    out[MINILM] = minilm_ceiling(ctx)
    say(f"  MiniLM B* = {out[MINILM]['b_star']}")
    if ctx.mode.smollm_batches:
        say(f"stage ceiling: SmolLM2 greedy, {ctx.mode.new_tokens} new tokens, "
            f"B in {list(ctx.mode.smollm_batches)}, {engine_of(SMOLLM)} engine "
            "(`run` = submit the batch and wait, as the worker's engine)")
        out[SMOLLM] = smollm_ceiling(ctx)
        say(f"  SmolLM2 B* = {out[SMOLLM]['b_star']}")
    return out


def batch_ms_at(ceiling: dict[str, Any], size: float) -> float:
    """The model's time for one batch of `size` (linear between measured batch sizes)."""
    points = sorted((int(b), v["batch_ms"]["median"]) for b, v in ceiling["curve"].items())
    if size <= points[0][0]:
        return float(points[0][1])
    for (b0, t0), (b1, t1) in itertools.pairwise(points):
        if size <= b1:
            return float(t0 + (t1 - t0) * (size - b0) / (b1 - b0))
    return float(points[-1][1] * size / points[-1][0])
