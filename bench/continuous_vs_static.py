"""Generation engines compared: static micro-batching vs continuous batching (SmolLM2, same run).

    python -m bench.continuous_vs_static [--quick] [--rate 1.0] [--out result.json]

Requests are chat questions with max_new_tokens drawn from {8, 16, 32, 64}, arriving over time
(Poisson, `--rate` requests/s) and all at once. Both engines get the same prompts and the same
arrival schedule:
- static: a worker takes up to 8 queued requests (whatever has arrived when it is free) and runs
  them as one `generate` batch; nothing is streamed, so time to first token = latency;
- continuous: each request is submitted at its arrival time; time to first token is the first
  event. Greedy decoding, so both must produce the same texts (checked and reported).
Prints a JSON summary: tokens/s, p50/p99 latency and time to first token, median of the reps.
"""

from __future__ import annotations

import argparse
import json
import queue
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.common import percentile
from models.base import (
    ChatMessage,
    GenerationParameters,
    ModelInput,
    ModelOutput,
    ModelRunner,
    TokenEvent,
)
from models.base import StreamingGenerator as Streaming
from models.loading import load_runner
from models.registry import load_registry

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Why is the sky blue?",
    "Write a haiku about the sea.",
    "How do plants make food?",
    "What is 12 times 7?",
    "Give me a tip for learning to cook.",
    "Explain what a computer network is.",
    "Describe a cat in one sentence.",
    "What causes rain?",
    "Suggest a name for a red boat.",
    "What is the boiling point of water?",
    "Tell me a fun fact about space.",
    "How many legs does a spider have?",
    "Summarise the plot of Cinderella.",
    "What is a prime number?",
]
LENGTHS = (8, 16, 32, 64)
STATIC_BATCH = 8


@dataclass
class Trace:
    arrival: list[float]  # seconds after the start
    first: dict[int, float] = field(default_factory=dict)
    done: dict[int, float] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    tokens: int = 0


def workload(count: int, seed: int) -> list[ModelInput]:
    rng = random.Random(seed)
    return [
        ModelInput(
            request_id=str(i),
            messages=(ChatMessage("user", QUESTIONS[i % len(QUESTIONS)]),),
            parameters=GenerationParameters(max_new_tokens=rng.choice(LENGTHS)),
        )
        for i in range(count)
    ]


def arrivals(count: int, rate: float | None, seed: int) -> list[float]:
    if rate is None:
        return [0.0] * count
    rng, now, times = random.Random(seed + 1), 0.0, []
    for _ in range(count):
        times.append(now)
        now += rng.expovariate(rate)
    return times


def feed(arrival: list[float], start: float, submit: Callable[[int], None]) -> None:
    for index, at in enumerate(arrival):
        time.sleep(max(0.0, start + at - time.perf_counter()))
        submit(index)


def run_static(runner: ModelRunner, items: list[ModelInput], arrival: list[float]) -> Trace:
    trace, waiting = Trace(arrival), queue.SimpleQueue[int]()
    start = time.perf_counter()
    threading.Thread(target=feed, args=(arrival, start, waiting.put), daemon=True).start()
    while len(trace.done) < len(items):
        batch = [waiting.get()]
        while len(batch) < STATIC_BATCH and not waiting.empty():
            batch.append(waiting.get())
        outputs = runner.run("generate", [items[i] for i in batch])
        finished = time.perf_counter() - start
        for index, out in zip(batch, outputs, strict=True):
            trace.first[index] = trace.done[index] = finished
            trace.texts[index], trace.tokens = out.text or "", trace.tokens + out.tokens_out
    return trace


def run_continuous(engine: Streaming, items: list[ModelInput], arrival: list[float]) -> Trace:
    trace, lock, all_done = Trace(arrival), threading.Lock(), threading.Event()
    start = time.perf_counter()

    def on_event(index: int, event: TokenEvent) -> None:
        now = time.perf_counter() - start
        with lock:
            trace.first.setdefault(index, now)
            if event.finished:
                out = event.output or ModelOutput(text="")
                trace.done[index], trace.texts[index] = now, out.text or ""
                trace.tokens += out.tokens_out
                if len(trace.done) == len(items):
                    all_done.set()

    def submit(index: int) -> None:
        engine.submit(items[index], lambda event: on_event(index, event))

    feed(arrival, start, submit)
    all_done.wait()
    return trace


def summarise(trace: Trace) -> dict[str, float]:
    latency = [trace.done[i] - at for i, at in enumerate(trace.arrival)]
    ttft = [trace.first[i] - at for i, at in enumerate(trace.arrival)]
    return {
        "tokens_per_s": trace.tokens / max(trace.done.values()),
        "latency_p50_s": percentile(latency, 50),
        "latency_p99_s": percentile(latency, 99),
        "ttft_p50_s": percentile(ttft, 50),
        "ttft_p99_s": percentile(ttft, 99),
        "tokens": trace.tokens,
        "wall_s": max(trace.done.values()),
    }


def median_of(reps: list[dict[str, float]]) -> dict[str, Any]:
    return {key: round(statistics.median(r[key] for r in reps), 3) for key in reps[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 rep, 12 requests")
    parser.add_argument("--requests", type=int, default=None, help="default 32 (12 quick)")
    parser.add_argument("--rate", type=float, default=1.0, help="Poisson arrivals per second")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--cache-dir", type=Path, default=Path(".streamserve/models"))
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    count = args.requests or (12 if args.quick else 32)
    reps = 1 if args.quick else 3
    spec = load_registry().get("smollm2")
    static = load_runner(replace(spec, engine="static"), args.cache_dir, args.threads)
    engine = load_runner(replace(spec, engine="continuous"), args.cache_dir, args.threads)
    assert isinstance(engine, Streaming)
    warm = workload(2, 0)
    static.run("generate", warm)  # first-call costs out of the way
    engine.run("generate", warm)
    items = workload(count, 7)
    result: dict[str, Any] = {
        "model": spec.key,
        "requests": count,
        "reps": reps,
        "lengths": list(LENGTHS),
        "static_batch": STATIC_BATCH,
        "torch_threads": args.threads,
    }
    for name, rate in (("poisson", args.rate), ("all_at_once", None)):
        arrival = arrivals(count, rate, 7)
        runs: dict[str, list[dict[str, float]]] = {"static": [], "continuous": []}
        same = 0
        for rep in range(reps):
            # Alternate the order so neither engine always runs on a warmer machine.
            order = ("static", "continuous") if rep % 2 == 0 else ("continuous", "static")
            traces = {}
            for kind in order:
                traces[kind] = (
                    run_static(static, items, arrival)
                    if kind == "static"
                    else run_continuous(engine, items, arrival)
                )
                runs[kind].append(summarise(traces[kind]))
                print(f"# {name} rep {rep + 1}/{reps} {kind}: {runs[kind][-1]}", flush=True)
            same = sum(
                traces["static"].texts[i] == traces["continuous"].texts[i] for i in range(count)
            )
        result[name] = {
            "rate_per_s": rate,
            "identical_texts": f"{same}/{count}",
            **{kind: median_of(values) for kind, values in runs.items()},
        }
    engine.close()
    static.close()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
