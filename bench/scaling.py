"""Stage 6a, scaling: 1 vs 2 worker processes in one consumer group (4 partitions), with the
no-op and the MiniLM model. On 2 cores shared with the broker this shows contention more than
scaling; torch threads are split so that workers x threads = the threads of one worker."""

from __future__ import annotations

import os
from typing import Any

from bench.common import figure, med, ratio, say
from bench.contenders.config import ContenderConfig
from bench.context import Context
from bench.kafka_io import Topics
from bench.pipeline import b_star
from bench.procs import config_for
from bench.runners import MINILM, NOOP, bench_spec
from bench.runs import measure_bursts
from bench.workloads import embed_payloads, embed_texts


def _configs(ctx: Context, model: str, topics: Topics, workers: int, name: str,
             size: int) -> list[ContenderConfig]:
    threads = max(1, ctx.torch_threads // workers)
    return [config_for("ours", model, topics, ctx.workdir, f"{name}-{w}", batch_size=size,
                       torch_threads=threads) for w in range(workers)]


def _noop(ctx: Context, n: int) -> dict[int, list[float]]:
    return _bursts(ctx, NOOP, n, 1000)


def _minilm(ctx: Context, n: int) -> dict[int, list[float]]:
    return _bursts(ctx, MINILM, n, b_star(ctx, MINILM))


def _bursts(ctx: Context, model: str, n: int, size: int) -> dict[int, list[float]]:
    """The workers start once and wait until the group has settled (each has partitions); each
    repetition is one burst, timed from when it is fully produced."""
    texts = embed_texts(None, 1024)
    rates: dict[int, list[float]] = {}
    for workers in (1, 2):
        topics = Topics.fresh(ctx.bootstrap, f"scale-{model}-{workers}w")
        topics.create()
        configs = _configs(ctx, model, topics, workers, f"scale-{model}-{workers}w", size)
        bursts = [embed_payloads(model, texts, n, f"s{workers}r{r}")
                  for r in range(ctx.mode.reps)]
        runs = measure_bursts(f"scaling {model} {workers} worker(s)", configs, topics, bursts,
                              ctx.workdir, timeout_s=120.0 + n / 10.0)
        rates[workers] = [run.rate for run in runs]
    return rates


def run(ctx: Context) -> dict[str, Any]:
    device = bench_spec(MINILM).device
    out: dict[str, Any] = {"note": (
        f"{os.cpu_count()} cores shared by the broker, the workers and the benchmark"
        + ("" if device in {"cpu", "auto"} else f"; both workers on one {device} device"))}
    for model, n, measure_model in ((NOOP, ctx.mode.scaling_noop_n, _noop),
                                    (MINILM, ctx.mode.scaling_minilm_n, _minilm)):
        if not n:
            continue
        say(f"stage scaling: {model}, 1 vs 2 workers, {n} requests per rep")
        rates = measure_model(ctx, n)
        one, two = figure(rates[1]), figure(rates[2])
        # by_workers: what `streamserve plan --bench` fits (more counts may join it later).
        out[model] = {"requests": n, "one_worker": one, "two_workers": two,
                      "by_workers": {"1": one, "2": two}, "device": device,
                      "speedup": ratio(med(two), med(one)),
                      "torch_threads": {"1": ctx.torch_threads,
                                        "2": max(1, ctx.torch_threads // 2)}}
        say(f"  scaling {model}: 2 workers / 1 worker = {out[model]['speedup']:.2f}")
    return out
