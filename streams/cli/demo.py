"""`streamserve demo` / `make demo`: the whole service on this machine, end to end.

Starts the local Kafka (unless one is already running), one worker process with the real
SmolLM2 and MiniLM models, sends real prompts and embedding requests through Kafka, prints the
answers with per-stage latency and a small load summary, stops everything it started, and
prints the per-stage percentiles the worker logged to ClickHouse (embedded chDB).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from typing import Any

from streams.analytics.stats import parse_since, stats_report
from streams.client.commands import describe_result, describe_timings, print_stream
from streams.client.library import InferenceClient, new_request
from streams.config import Settings
from streams.kafka.stack import open_stack
from streams.kafka.stack.broker import free_port
from streams.kafka.topics import ensure_topics, service_topics

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for writing clean Python code.",
    "Explain in one sentence what Apache Kafka is.",
    "Write a haiku about streaming data.",
]
SENTENCES = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar.",
    "The stock market fell sharply today.",
    "Kafka partitions spread load across consumers.",
]


def _say(message: str) -> None:
    print(message, flush=True)


def run_demo(settings: Settings) -> int:
    cluster = open_stack(settings)
    started_kafka = not all(node.running for node in cluster.nodes)
    if started_kafka:
        _say("== starting Apache Kafka (KRaft) ...")
        seconds = cluster.up(timeout_s=settings.kafka_start_timeout_s)
        _say(f"   ready in {seconds:.1f}s at {cluster.bootstrap_servers}")
    settings = settings.model_copy(update={"kafka_bootstrap_servers": cluster.bootstrap_servers,
                                           "web_port": free_port()})
    asyncio.run(ensure_topics(settings, service_topics(settings)))
    worker = _start_worker(settings)
    try:
        _wait_ready(settings, worker)
        failed = asyncio.run(_conversation(settings))
    finally:
        _say("== stopping the worker (SIGTERM: drain, commit, leave the group) ...")
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if started_kafka:
            _say("== stopping Kafka ...")
            cluster.down()
    if settings.request_log:
        _say("\n== request log analytics from ClickHouse (streamserve stats --since 15m) ==")
        _say(stats_report(settings, parse_since("15m")))
    if failed:
        # CI runs the demo: an answer that is not "ok" must fail it, not scroll past.
        _say(f"\n== demo FAILED: {failed} request(s) not answered ok (see above)")
        return 1
    return 0


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "STREAMSERVE_WEB_PORT": str(settings.web_port),
           "STREAMSERVE_DATA_DIR": str(settings.data_dir),
           "STREAMSERVE_WORKER_ID": "demo-worker-1",
           # The worker's own "[worker] loading ..." lines say what loads; tqdm bars redrawn
           # with carriage returns would garble those lines and ours on the shared terminal.
           "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    _say("== starting a worker with SmolLM2-135M-Instruct and all-MiniLM-L6-v2 ...")
    return subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"], env=env)


def _wait_ready(settings: Settings, worker: subprocess.Popen[bytes],
                timeout_s: float = 600.0, report_every_s: float = 15.0) -> None:
    """Poll /ready until the models are loaded and partitions assigned. Progress is whole
    lines (the worker's, and ours every `report_every_s`): a spinner redrawn with carriage
    returns would be overwritten by the worker's lines on the same terminal."""
    started = time.monotonic()
    next_report = started + report_every_s
    url = f"http://127.0.0.1:{settings.web_port}/ready"
    while True:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                state = json.loads(response.read())
            if state.get("ready"):
                _say(f"   worker ready after {time.monotonic() - started:.1f}s: {state}")
                return
        except OSError:
            pass
        now = time.monotonic()
        if now - started > timeout_s:
            raise SystemExit(f"the worker was not ready within {timeout_s:.0f}s")
        if now >= next_report:
            _say(f"   still waiting for the worker ({now - started:.0f}s; a first run converts "
                 "SmolLM2 once, 20-40 s on 2 cores)")
            next_report = now + report_every_s
        time.sleep(0.5)


async def _conversation(settings: Settings) -> int:
    """Returns how many answers were not "ok"."""
    not_ok = 0
    async with InferenceClient(settings) as client:
        _say("\n== generation (SmolLM2, chat, greedy) ==")
        for prompt in PROMPTS:
            result = await client.infer(new_request(
                "smollm2", "generate", messages=[{"role": "user", "content": prompt}],
                parameters={"max_new_tokens": 48}), timeout_s=300)
            not_ok += _not_ok(result)
            _say(f"> {prompt}\n{describe_result(result)}\n")
        _say("== token streaming (SmolLM2, tokens as Kafka events on the tokens topic) ==")
        prompt = "Name three uses of a message queue."
        _say(f"> {prompt}")
        request = new_request("smollm2", "generate",
                              messages=[{"role": "user", "content": prompt}],
                              parameters={"max_new_tokens": 48})
        await print_stream(client, request, timeout_s=300)
        streamed = await client.result(request["request_id"])
        not_ok += _not_ok(streamed)
        _say(f"\n  {describe_timings(streamed)}\n")
        _say("== embeddings (MiniLM) ==")
        for sentence in SENTENCES:
            result = await client.infer(new_request("minilm", "embed", text=sentence))
            not_ok += _not_ok(result)
            _say(f"> {sentence}\n{describe_result(result)}")
        result = await client.infer(new_request(
            "minilm", "classify", text="This service is fast and a joy to use!",
            labels=["praise", "complaint", "question"]))
        not_ok += _not_ok(result)
        _say(f"\n> classify 'This service is fast and a joy to use!'\n{describe_result(result)}")
        not_ok += await _burst(client)
    return not_ok


async def _burst(client: InferenceClient) -> int:
    """Concurrent requests, so micro-batches form: throughput, latency, batch sizes per model."""
    _say("\n== a burst: 256 embeddings + 16 generations sent at once ==")
    requests = [new_request("minilm", "embed", text=f"{SENTENCES[i % 4]} (variant {i})")
                for i in range(256)]
    requests += [new_request("smollm2", "generate",
                             messages=[{"role": "user", "content": PROMPTS[i % 4]}],
                             parameters={"max_new_tokens": 32}) for i in range(16)]
    started = time.monotonic()
    results = await client.infer_many(requests, timeout_s=600)
    elapsed = time.monotonic() - started
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_model[result["model"]].append(result)
    for model, rows in sorted(by_model.items()):
        totals = sorted(r["timings"]["total_ms"] for r in rows)
        done = max(r["completed_at"] for r in rows) - min(r["created_at"] for r in rows)
        sizes = sorted({r["batch_size"] for r in rows})
        statuses = Counter(r["status"] for r in rows)
        _say(f"{model:8} {len(rows):4} requests {dict(statuses)}: "
             f"{len(rows) / (done / 1000):6.1f} req/s, "
             f"p50 {_pct(totals, 50):6.0f} ms, p99 {_pct(totals, 99):6.0f} ms, "
             f"batch sizes {sizes}")
    _say(f"all {len(results)} answered in {elapsed:.1f}s")
    return sum(_not_ok(r) for r in results)


def _not_ok(result: dict[str, Any]) -> int:
    return 0 if result.get("status") == "ok" else 1


def _pct(values: list[float], pct: float) -> float:
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]
