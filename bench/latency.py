"""Stage 5, latency under load: open-loop Poisson arrivals at fractions of the MiniLM worker's
capacity (max_batch_size = B*, max_wait_ms = 10). The capacity is measured again in this worker
right before the Poisson segments (a burst drained at full speed), because the machine's load
drifts between stages. The client clock measures send → result received; the result's own
inference_ms is the model's time for the batch the request was in.
Goal at 70%: p99 end-to-end <= max_wait + 2 x the model's batch time at the batch sizes that
formed: the median inference_ms of that segment (and, for reference, the ceiling curve's time
for the mean batch size that formed)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import statistics
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.ceiling import batch_ms_at
from bench.common import figure, med, percentile, say, steady_rate
from bench.context import Context
from bench.kafka_io import Topics
from bench.pipeline import b_star
from bench.procs import config_for, started, wait_http_ready
from bench.queue_model import simulate
from bench.runners import MINILM
from bench.workloads import embed_texts
from streams.client.library import new_request
from streams.wire.codec import request_codec, result_codec

MAX_WAIT_MS = 10.0
WARM_S = 1.0
GOAL_LOAD = 0.7
# The latency worker's batch cap: the smallest B whose throughput alone is within 5% of the
# best. Past that knee a bigger batch buys (almost) no throughput, only a longer batch time:
# under Poisson arrivals the batch that forms after a lull grows with everything that arrived
# while the previous one computed, and a request waits for that batch and then its own.
KNEE = 0.95


def latency_batch(ctx: Context) -> tuple[int, str]:
    """(max_batch_size for the latency worker, why)."""
    if ctx.latency_batch is not None:
        return ctx.latency_batch, "set by --latency-batch"
    ceiling = ctx.results.get("ceiling", {}).get(MINILM)
    if not ceiling:
        return b_star(ctx, MINILM), "B* (no ceiling measured in this run)"
    curve = ceiling["curve"]
    best = med(curve[str(ceiling["b_star"])]["per_s"])
    knee = min(int(b) for b in curve if med(curve[b]["per_s"]) >= KNEE * best)
    return knee, f"smallest B with T_off(B) >= {KNEE:.2f} x T_off(B*={ceiling['b_star']})"


class Load:
    """Sends at Poisson times and records (sent, received, result) per request id."""

    def __init__(self, topics: Topics, texts: list[str]) -> None:
        self.topics = topics
        self.texts = texts
        self.sent: dict[str, float] = {}
        self.received: dict[str, tuple[float, dict[str, Any]]] = {}
        self._requests, self._results = request_codec(), result_codec()
        self.producer = AIOKafkaProducer(bootstrap_servers=topics.bootstrap, acks="all",
                                         enable_idempotence=True, linger_ms=0)
        # The broker answers a fetch as soon as one byte is there (fetch_min_bytes=1), so a
        # long max wait adds no latency; a short one costs the broker that shares the cores
        # (an ad-hoc /proc probe of the broker: idle 5% of a core, 29% with an idle reader
        # polling every 20 ms; at 50 requests/s 44% with 20 ms against 29% with 500 ms).
        self.consumer = AIOKafkaConsumer(bootstrap_servers=topics.bootstrap, group_id=None,
                                         fetch_max_wait_ms=500,
                                         isolation_level=topics.isolation)
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        parts = [TopicPartition(self.topics.results, p) for p in range(self.topics.partitions)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batch.values():
                for record in records:
                    result = self._results.decode(record.value or b"")
                    self.received.setdefault(result["request_id"], (now, result))

    async def segment(self, label: str, rate: float, seconds: float, seed: int) -> list[str]:
        """Open loop for WARM_S + `seconds`; returns the ids sent after the warm-up."""
        rng = random.Random(seed)
        start = time.time()
        at = start
        measured: list[str] = []
        i = 0
        while True:
            at += rng.expovariate(rate)
            if at > start + WARM_S + seconds:
                break
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            rid = await self._send(label, i)
            if at >= start + WARM_S:
                measured.append(rid)
            i += 1
        await self._answered(measured, timeout_s=30.0)
        return measured

    async def _send(self, label: str, i: int) -> str:
        """Produce request `i` of `label` now; returns its id."""
        rid = f"{label}-{i:06d}"
        request = new_request(MINILM, "embed", text=self.texts[i % len(self.texts)],
                              request_id=rid)
        self.sent[rid] = time.time()
        await self.producer.send(self.topics.requests, self._requests.encode(request),
                                 key=rid.encode())
        return rid

    async def _answered(self, ids: list[str], timeout_s: float) -> None:
        """Until every id in `ids` has its result, or `timeout_s` passed."""
        deadline = time.time() + timeout_s
        while any(r not in self.received for r in ids) and time.time() < deadline:
            await asyncio.sleep(0.05)

    async def burst(self, label: str, n: int) -> float:
        """Send `n` requests at once; the rate they are answered at (client clock)."""
        ids = [await self._send(label, i) for i in range(n)]
        await self._answered(ids, timeout_s=60.0 + n / 10.0)
        return steady_rate([self.received[r][0] * 1000.0 for r in ids if r in self.received])

    def stats(self, ids: list[str]) -> dict[str, float]:
        done = [r for r in ids if r in self.received]
        e2e = [(self.received[r][0] - self.sent[r]) * 1000.0 for r in done]
        inference = [self.received[r][1]["timings"]["inference_ms"] for r in done]
        sizes = [self.received[r][1]["batch_size"] for r in done]
        waits = [self.received[r][1]["timings"]["batch_wait_ms"] for r in done]
        return {"sent": len(ids), "answered": len(done),
                "p50_ms": percentile(e2e, 50), "p99_ms": percentile(e2e, 99),
                "p99_overhead_ms": percentile([e - i for e, i in zip(e2e, inference,
                                                                     strict=True)], 99),
                "inference_p50_ms": percentile(inference, 50),
                # Where a slow request's time goes: waiting for its batch to form (mostly the
                # batch computing ahead of it) and the compute time of its own batch.
                "batch_wait_p99_ms": percentile(waits, 99),
                "inference_p99_ms": percentile(inference, 99),
                "batch_size_median": statistics.median(sizes) if sizes else float("nan"),
                "batch_size_mean": statistics.mean(sizes) if sizes else float("nan")}

    def e2e(self, ids: list[str]) -> list[float]:
        return [(self.received[r][0] - self.sent[r]) * 1000.0 for r in ids if r in self.received]


async def _drive(ctx: Context, topics: Topics, capacity_n: int) -> dict[str, Any]:
    load = Load(topics, embed_texts(None, 1024, seed=11))
    await load.start()
    capacity = await load.burst("capacity", capacity_n)
    say(f"  latency: capacity now {capacity:,.1f} req/s ({capacity_n} requests at once)")
    per_load: dict[str, list[dict[str, float]]] = {f"{f:.2f}": [] for f in ctx.mode.latency_loads}
    samples: dict[str, list[float]] = {key: [] for key in per_load}
    try:
        for rep in range(ctx.mode.reps):
            for fraction in ctx.mode.latency_loads:
                key = f"{fraction:.2f}"
                rate = fraction * capacity
                ids = await load.segment(f"l{key}-{rep}", rate, ctx.mode.latency_s, seed=rep)
                stats = load.stats(ids)
                per_load[key].append(stats)
                samples[key] += load.e2e(ids)
                say(f"  latency {fraction:.0%} ({rate:,.0f} req/s) rep {rep + 1}/"
                    f"{ctx.mode.reps}: p50 {stats['p50_ms']:.1f} ms, p99 "
                    f"{stats['p99_ms']:.1f} ms, batch ~{stats['batch_size_mean']:.1f}")
    finally:
        await load.stop()
    out: dict[str, Any] = {}
    for key, runs in per_load.items():
        out[key] = {name: figure([r[name] for r in runs]) for name in runs[0]}
        out[key]["rate"] = float(key) * capacity
    return {"capacity": capacity, "loads": out,
            "e2e_samples_ms": {k: sorted(v) for k, v in samples.items()}}


def run(ctx: Context) -> dict[str, Any]:
    if not ctx.mode.latency_loads:
        return {"skipped": f"no load levels in {ctx.mode.name} mode"}
    pipeline = ctx.results.get("pipeline", {}).get(MINILM)
    size, why = latency_batch(ctx)
    capacity_n = max(200, ctx.mode.pipeline_minilm_n // 3)
    say(f"stage latency: Poisson arrivals at {list(ctx.mode.latency_loads)} of the capacity, "
        f"{ctx.mode.latency_s:.0f}s each; max_batch_size {size} ({why})")
    topics = Topics.fresh(ctx.bootstrap, "latency")
    topics.create()
    config = config_for("ours", MINILM, topics, ctx.workdir, "latency-worker", batch_size=size,
                        torch_threads=ctx.torch_threads, max_wait_ms=MAX_WAIT_MS)
    with started([config], ctx.workdir):
        wait_http_ready(config.web_port)  # joined, partitions assigned
        measured = asyncio.run(_drive(ctx, topics, capacity_n))
    out: dict[str, Any] = {"b_star": b_star(ctx, MINILM), "max_batch_size": size,
                           "max_batch_size_why": why, "max_wait_ms": MAX_WAIT_MS,
                           "pipeline_stage_capacity": med(pipeline["rate"]) if pipeline else None,
                           **measured}
    goal_key = f"{GOAL_LOAD:.2f}"
    if goal_key in out["loads"]:
        at_goal = out["loads"][goal_key]
        formed = med(at_goal["batch_size_mean"])
        batch_ms = med(at_goal["inference_p50_ms"])
        bound = MAX_WAIT_MS + 2 * batch_ms
        p99 = med(at_goal["p99_ms"])
        ceiling = ctx.results.get("ceiling", {}).get(MINILM)
        curve_ms = batch_ms_at(ceiling, formed) if ceiling else None
        out["goal"] = {"load": GOAL_LOAD, "batch_size_formed": formed, "model_batch_ms": batch_ms,
                       "bound_ms": bound, "p99_ms": p99, "pass": bool(p99 <= bound),
                       "ceiling_batch_ms": curve_ms,
                       "bound_from_ceiling_ms": MAX_WAIT_MS + 2 * curve_ms if curve_ms else None}
        if ceiling:
            # The same policy and arrival rate with the model's own batch times and nothing
            # else: what the goal asks of a worker that adds no overhead at all.
            ideal = simulate(at_goal["rate"], lambda b: batch_ms_at(ceiling, b), size,
                             MAX_WAIT_MS)
            out["goal"]["ideal"] = dataclasses.asdict(ideal)
            say(f"  ideal worker (ceiling's batch times, no Kafka) at 70%: p99 "
                f"{ideal.p99_ms:.1f} ms vs its bound {ideal.bound_ms:.1f} ms")
        say(f"  goal at 70%: p99 {p99:.1f} ms vs bound {bound:.1f} ms = {MAX_WAIT_MS:.0f} + "
            f"2 x {batch_ms:.1f} ms ({'pass' if p99 <= bound else 'FAIL'})")
    return out
