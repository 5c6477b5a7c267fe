"""Stage 8, delivery: exactly-once against at-least-once, side by side in one run.

Throughput: the real worker drains the same pre-loaded requests (no-op model, then MiniLM) in
each mode, the modes alternating within every repetition. Latency: one MiniLM worker per mode
under Poisson arrivals at 70 % of its measured capacity; end to end as a read_committed reader
sees it under exactly-once. From the exactly-once worker's /metrics: transactions per second and
the hold-back delay (a finished answer waiting for its partition's commit).
Goals (the issue's): exactly-once >= 0.9 x at-least-once throughput; exactly-once p99 <=
at-least-once p99 + commit interval + 20 ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.request
from typing import Any

from bench.common import figure, med, ratio, say
from bench.context import Context
from bench.kafka_io import Topics, preload
from bench.latency import MAX_WAIT_MS, Load, latency_batch
from bench.procs import config_for, started, wait_http_ready
from bench.runners import MINILM, NOOP
from bench.runs import measure
from bench.workloads import embed_payloads, embed_texts

MODES = ("at_least_once", "exactly_once")
COMMIT_INTERVAL_MS = 100.0  # the worker's default (STREAMSERVE_COMMIT_INTERVAL_MS)
GOAL_THROUGHPUT = 0.9
GOAL_MARGIN_MS = 20.0
LOAD = 0.7


def _isolation(mode: str) -> str:
    return "read_committed" if mode == "exactly_once" else "read_uncommitted"


def _throughput(ctx: Context, model: str, n: int, batch: int) -> dict[str, Any]:
    topics = Topics.fresh(ctx.bootstrap, f"delivery-{model}")
    topics.create()
    preload(topics, embed_payloads(model, embed_texts(None, 1024), n, f"dl-{model}"))
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    for rep in range(ctx.mode.reps):
        for mode in MODES:
            run_topics = topics.with_new_output()
            run_topics = dataclasses.replace(run_topics, isolation=_isolation(mode))
            run_topics.create()
            config = config_for("ours", model, run_topics, ctx.workdir,
                                f"dl-{model}-{mode}-{rep}", batch_size=batch,
                                torch_threads=ctx.torch_threads, delivery=mode)
            result = measure(f"delivery {model} {mode} rep {rep + 1}/{ctx.mode.reps}",
                             [config], run_topics, n, ctx.workdir, timeout_s=180.0 + n / 200.0)
            rates[mode].append(result.rate)
    per_rep = [ratio(e, a) for e, a in zip(rates["exactly_once"], rates["at_least_once"],
                                           strict=True)]
    return {"records": n, "rate": {mode: figure(v) for mode, v in rates.items()},
            "eos_over_alo": med(figure(per_rep)), "eos_over_alo_per_rep": figure(per_rep)}


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("streamserve_transactions_total", "streamserve_holdback_seconds")):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _holdback(metrics: dict[str, float]) -> dict[str, float | None]:
    count = metrics.get("streamserve_holdback_seconds_count", 0.0)
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in metrics.items()
                     if k.startswith("streamserve_holdback_seconds_bucket") and "+Inf" not in k)
    p99 = next((le for le, cum in buckets if count and cum >= 0.99 * count), None)
    return {"mean_ms": 1000.0 * metrics.get("streamserve_holdback_seconds_sum", 0.0) / count
            if count else None, "p99_bucket_ms": p99 * 1000.0 if p99 is not None else None}


def _latency_one(ctx: Context, mode: str, size: int, capacity_n: int,
                 rate: float | None) -> dict[str, Any]:
    """One MiniLM worker of `mode` under Poisson arrivals at `rate` (None: 70 % of the
    capacity its warm-up burst measures)."""
    topics = Topics.fresh(ctx.bootstrap, f"dl-lat-{mode}")
    topics = dataclasses.replace(topics, isolation=_isolation(mode))
    topics.create()
    config = config_for("ours", MINILM, topics, ctx.workdir, f"dl-lat-{mode}", batch_size=size,
                        torch_threads=ctx.torch_threads, max_wait_ms=MAX_WAIT_MS,
                        delivery=mode)
    with started([config], ctx.workdir):
        wait_http_ready(config.web_port)
        return asyncio.run(_drive(ctx, mode, topics, config.web_port, capacity_n, rate))


async def _drive(ctx: Context, mode: str, topics: Topics, port: int, capacity_n: int,
                 rate: float | None) -> dict[str, Any]:
    load = Load(topics, embed_texts(None, 1024, seed=11))
    await load.start()
    try:
        capacity = await load.burst(f"cap-{mode}", capacity_n)  # also the warm-up
        rate = LOAD * capacity if rate is None else rate
        before = _scrape(port)
        began = time.monotonic()
        ids: list[str] = []
        for rep in range(ctx.mode.reps):
            ids += await load.segment(f"dl-{mode}-{rep}", rate, ctx.mode.latency_s, seed=rep)
        seconds = time.monotonic() - began
        after = _scrape(port)
    finally:
        await load.stop()
    stats = load.stats(ids)
    key = 'streamserve_transactions_total{outcome="committed"}'
    txns = after.get(key, 0.0) - before.get(key, 0.0)
    say(f"  delivery latency {mode}: burst capacity {capacity:,.1f}/s; at {rate:,.1f} req/s p50 "
        f"{stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")
    return {"capacity": capacity, "rate": rate, **stats,
            "transactions_per_s": txns / seconds if mode == "exactly_once" else None,
            "holdback": _holdback(after) if mode == "exactly_once" else None}


def run(ctx: Context) -> dict[str, Any]:
    n_noop, n_minilm = ctx.mode.delivery_noop_n, ctx.mode.delivery_minilm_n
    if not n_noop:
        return {"skipped": f"no delivery runs in {ctx.mode.name} mode"}
    say(f"stage delivery: exactly-once vs at-least-once, {n_noop} no-op and {n_minilm} MiniLM "
        "requests per run, then MiniLM latency at 70% load")
    out: dict[str, Any] = {"commit_interval_ms": COMMIT_INTERVAL_MS,
                           NOOP: _throughput(ctx, NOOP, n_noop, 1000)}
    if n_minilm:
        out[MINILM] = _throughput(ctx, MINILM, n_minilm, 32)
    if ctx.mode.latency_loads:
        size, _ = latency_batch(ctx)
        capacity_n = max(200, ctx.mode.pipeline_minilm_n // 3)
        # Both modes at one rate: 70 % of the at-least-once worker's capacity.
        alo = _latency_one(ctx, "at_least_once", size, capacity_n, None)
        eos = _latency_one(ctx, "exactly_once", size, capacity_n, alo["rate"])
        latency = {"at_least_once": alo, "exactly_once": eos}
        bound = alo["p99_ms"] + COMMIT_INTERVAL_MS + GOAL_MARGIN_MS
        out["latency"] = {**latency, "p99_bound_ms": bound,
                          "pass_latency": bool(eos["p99_ms"] <= bound)}
    ratios = [out[m]["eos_over_alo"] for m in (NOOP, MINILM) if m in out]
    out["pass_throughput"] = bool(ratios and min(ratios) >= GOAL_THROUGHPUT)
    out["goal"] = (f"exactly-once >= {GOAL_THROUGHPUT} x at-least-once throughput; p99 <= "
                   f"at-least-once p99 + {COMMIT_INTERVAL_MS:.0f} + {GOAL_MARGIN_MS:.0f} ms")
    say(f"  delivery: eos/alo throughput {', '.join(f'{r:.2f}' for r in ratios)}")
    return out
