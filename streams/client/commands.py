"""What `streamserve send` and `streamserve tail` print."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from models.errors import UnknownModel
from models.registry import Registry, load_registry
from streams.client.library import InferenceClient, new_request
from streams.config import Settings
from streams.errors import ConfigError, DecodeError
from streams.kafka.broker_check import start_or_explain
from streams.kafka.options import reader_options
from streams.wire.codec import result_codec


def default_target(registry: Registry, served: list[str], model: str | None,
                   task: str | None) -> tuple[str, str]:
    """The model and task `send` uses when the command line leaves them out: the first served
    registry model that generates (else the first), and that model's first task."""
    names = [name for name in registry.names() if not served or name in served]
    if model is None:
        generating = [n for n in names if "generate" in registry.get(n).tasks]
        if not (generating or names):
            raise ConfigError("the model registry serves no model: pass --model")
        model = (generating or names)[0]
    if task is None:
        try:
            task = registry.get(model).tasks[0]
        except UnknownModel as exc:
            raise ConfigError(f"{exc}; pass --task to send to it anyway") from None
    return model, task


def build_request(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    model, task = args.model, args.task
    if model is None or task is None:  # a client host may have no registry: read it if needed
        model, task = default_target(load_registry(settings.model_registry),
                                     settings.served_models, model, task)
    chat = task == "generate" and args.chat is not False
    parameters = {k: v for k, v in {"max_new_tokens": args.max_new_tokens,
                                     "temperature": args.temperature}.items() if v is not None}
    return new_request(model, task, text=None if chat else args.text,
                       messages=[{"role": "user", "content": args.text}] if chat else [],
                       labels=args.label, parameters=parameters)


def describe_result(result: dict[str, Any]) -> str:
    """One human-readable block: the answer, then the per-stage timings."""
    status = result["status"]
    if status != "ok":
        error = result.get("error") or {}
        answer = f"{status}: {error.get('code', '')} {error.get('message', '')}".strip()
    elif result.get("text") is not None:
        answer = result["text"].strip()
    elif result.get("embedding") is not None:
        vector = result["embedding"]
        answer = f"embedding[{len(vector)}] = [{', '.join(f'{v:.3f}' for v in vector[:4])}, ...]"
    else:
        answer = f"label={result.get('label')} score={result.get('score') or 0:.3f}"
    return f"{answer}\n  {describe_timings(result)}"


def describe_timings(result: dict[str, Any]) -> str:
    t = result["timings"]
    return (f"total {t['total_ms']:.0f} ms = kafka {t['kafka_wait_ms']:.0f} + batch "
              f"{t['batch_wait_ms']:.0f} + queue {t['queue_wait_ms']:.0f} + inference "
              f"{t['inference_ms']:.0f} (+ publish); batch of {result['batch_size']}, "
              f"tokens {result['tokens_in']}→{result['tokens_out']}, {result['worker_id']}")


async def send_and_print(settings: Settings, args: argparse.Namespace) -> int:
    request = build_request(args, settings)
    async with InferenceClient(settings) as client:
        if args.stream:
            await print_stream(client, request, args.timeout)
            result = await client.result(request["request_id"], timeout_s=args.timeout)
            print(f"\n  {describe_timings(result)}")
            return 0 if result["status"] == "ok" else 1
        else:
            result = await client.infer(request, timeout_s=args.timeout)
    print(describe_result(result))
    return 0 if result["status"] == "ok" else 1


async def print_stream(client: InferenceClient, request: dict[str, Any],
                        timeout_s: float) -> None:
    """Print tokens as they arrive, then time-to-first-token and the mean time per token."""
    started = time.monotonic()
    first: float | None = None
    tokens = 0
    async for chunk in client.stream(request, timeout_s=timeout_s):
        if first is None and chunk["delta"]:
            first = time.monotonic() - started
        tokens = chunk["tokens_out"]
        print(chunk["delta"], end="", flush=True)
    total = time.monotonic() - started
    if first is not None and tokens > 1:
        print(f"\n  first token after {first * 1000:.0f} ms, then "
              f"{(total - first) * 1000 / (tokens - 1):.0f} ms per token ({tokens} tokens)",
              end="")


async def tail_results(settings: Settings, limit: int, from_beginning: bool = False) -> int:
    """Print results as they arrive: new ones only, or the whole topic first. No consumer
    group, so nothing is committed and every `tail` sees every result."""
    codec = result_codec()
    consumer = AIOKafkaConsumer(settings.results_topic, group_id=None,
                                auto_offset_reset="earliest" if from_beginning else "latest",
                                **reader_options(settings))
    await start_or_explain(consumer, settings.kafka_bootstrap_servers, consumer.stop)
    seen = 0
    try:
        while limit <= 0 or seen < limit:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    try:
                        result = codec.decode(record.value or b"")
                    except DecodeError as exc:
                        print(f"[{record.partition}@{record.offset}] undecodable: {exc}")
                        continue
                    seen += 1
                    print(f"[{record.partition}@{record.offset}] {result['request_id']} "
                          f"{result['model']}: {describe_result(result)}", flush=True)
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
    return 0
