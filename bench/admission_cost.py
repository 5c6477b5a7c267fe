"""Event-loop time of admitting one request (decode → caps → validate → count tokens), with the
real models' tokenizers: what a maximal valid request costs before it is queued, and what an
oversize one costs before it is refused. Every microsecond here delays heartbeats and fetches.

    .venv/bin/python -m bench.admission_cost [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.base import ModelInput
from models.loading import load_runner
from models.registry import load_registry
from streams.client.library import new_request
from streams.errors import InvalidRequest
from streams.protocol.requests import check_request_size, count_input_tokens, validate_request
from streams.wire.codec import request_codec
from streams.worker.served import ServedModel


def admit_once(model: ServedModel, payload: bytes) -> str:
    """The admission work the fetch loop does for one record; its outcome."""
    codec = request_codec()
    try:
        if len(payload) > model.caps.max_request_bytes:
            raise InvalidRequest("request_too_large", "over the byte cap")
        record = codec.decode(payload)
        check_request_size(len(payload), model.caps)
        item = validate_request(record, model.limits, time.time() * 1000)
        count_input_tokens(item.input, model.runner.count_tokens, model.runner.max_input_tokens)
    except InvalidRequest as exc:
        return exc.code
    return "queued"


def timed(fn: Callable[[], str], repeats: int) -> tuple[str, float, float]:
    outcome = fn()  # warm: caches, the tokenizer's first call
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e6)
    return outcome, statistics.median(samples), max(samples)


def longest_fitting(model: ServedModel, word: str = "kafka ") -> str:
    """The longest text of repeated `word`s the model's token cap still takes."""
    low, high = 1, model.limits.max_input_chars // len(word)
    while low < high:  # binary search on the word count
        middle = (low + high + 1) // 2
        tokens = model.runner.count_tokens(ModelInput("probe", word * middle))
        low, high = (middle, high) if tokens <= model.runner.max_input_tokens else (low,
                                                                                middle - 1)
    return word * low


def cases(model: ServedModel) -> list[tuple[str, dict[str, Any]]]:
    chars = model.limits.max_input_chars
    name, task = model.name, "generate" if "generate" in model.runner.tasks else "embed"
    found = [
        ("maximal valid (at the token cap)",
         new_request(name, task, text=longest_fitting(model))),
        ("at the character cap (too many tokens)",
         new_request(name, task, text="a " * (chars // 2))),
        ("1 MB prompt (over the byte cap)", new_request(name, task, text="x" * 1_000_000)),
        ("0.9 MB prompt (over the character cap)", new_request(name, task, text="y" * 900_000)),
    ]
    if task == "generate":
        per_message = longest_fitting(model)[: chars // (2 * model.caps.max_messages)]
        messages = [{"role": "user", "content": per_message}] * model.caps.max_messages
        found.append((f"{model.caps.max_messages} chat messages", new_request(
            name, task, messages=messages)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    codec = request_codec()
    cache = Path(tempfile.mkdtemp(prefix="admission-cost-"))
    print(f"{'model':8} {'case':41} {'outcome':18} {'median µs':>10} {'max µs':>8}")
    for spec in load_registry():
        runner = load_runner(spec, cache, torch_threads=1)
        model = ServedModel(spec.name, spec.version, runner, spec.labels, caps=spec.limits,
                            failure=spec.failure)
        for label, request in cases(model):
            payload = codec.encode(request)
            outcome, median, worst = timed(
                lambda m=model, p=payload: admit_once(m, p), args.repeats)
            print(f"{spec.name:8} {label:41} {outcome:18} {median:10.0f} {worst:8.0f}")
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
