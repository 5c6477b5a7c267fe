"""The `streamserve` argument parser: every subcommand, its options with their defaults, and one
example each. Each subcommand sets `action` (e.g. "stack up"); `streams.cli.main` maps it to
code."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import textwrap
from pathlib import Path
from typing import Any

from streams.cli.models import add_models_parser

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # streams/cli/parser.py -> the checkout
_Subparsers = Any  # argparse's subparsers action has no public type


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default; defaults that say nothing (unset, off, an empty list) are
    left out, the help text says what unset means. Descriptions wrap line by line, and
    indented lines (the examples) are kept whole, so they can be copied."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line if line.startswith(" ") or not line.strip()
                         else textwrap.fill(line, width, initial_indent=indent,
                                            subsequent_indent=indent)
                         for line in text.splitlines())


def version() -> str:
    try:
        return importlib.metadata.version("streamserve")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _command(commands: _Subparsers, name: str, summary: str, example: str,
             action: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description or summary,
        epilog=f"example:\n  {example}", formatter_class=HelpFormatter)
    parser.set_defaults(action=action or name)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamserve", formatter_class=HelpFormatter,
        description="Kafka-native inference service for transformer models. Settings come "
        "from STREAMSERVE_* environment variables (`streamserve config` prints them).",
        epilog="example:\n  streamserve stack up && streamserve topics create && "
        "streamserve worker")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"streamserve {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _stack(commands)
    _command(commands, "config", "print the effective settings, secrets masked",
             "STREAMSERVE_MAX_WAIT_MS=5 streamserve config")
    _command(commands, "worker", "run a worker (models from the registry)",
             "STREAMSERVE_MODELS=minilm streamserve worker",
             description="Run a worker: it checks that Kafka answers, loads the registry's "
             "models, joins the consumer group and serves until SIGTERM. A new consumer group "
             "starts at the earliest offset, so a worker replays requests already on the "
             "topic; one chDB path per worker (STREAMSERVE_DATA_DIR).")
    _topics(commands)
    _send(commands)
    add_models_parser(commands, _command)
    tail = _command(commands, "tail", "follow the results topic",
                    "streamserve tail --from-beginning --limit 10")
    tail.add_argument("--limit", type=int, default=0, help="stop after N results (0 = never)")
    tail.add_argument("--from-beginning", action="store_true",
                      help="replay the topic from its first record (default: new results only)")
    stats = _command(commands, "stats", "request analytics from ClickHouse",
                     "streamserve stats --since 15m --plot latency.png")
    stats.add_argument("--since", default="15m", help="window, e.g. 90s, 15m, 2h, 1d")
    stats.add_argument("--plot", type=Path, default=None, help="also write a latency chart (PNG)")
    scaled = _command(commands, "up", "run local workers: N, or autoscaled on lag",
                      "streamserve up --workers auto --min 1 --max 4")
    scaled.add_argument("--workers", default="auto", help="'auto' or a fixed count")
    scaled.add_argument("--min", type=int, default=None,
                        help="autoscaling lower bound "
                        "(default: STREAMSERVE_AUTOSCALE_MIN_REPLICAS)")
    scaled.add_argument("--max", type=int, default=None,
                        help="autoscaling upper bound "
                        "(default: STREAMSERVE_AUTOSCALE_MAX_REPLICAS)")
    scaled.add_argument("--gpus", default=None, help="'all' or GPU ids like 0,1: one worker "
                        "per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES)")
    scaled.add_argument("--workers-per-gpu", type=int, default=1,
                        help="with --gpus: K workers share each GPU (small models)")
    plan = _command(commands, "plan", "workers for a target rate, from measured throughput "
                    "at N workers (Amdahl, Gustafson, USL fits)",
                    "streamserve plan --bench latest --model minilm --target-rps 150")
    plan.add_argument("--since", default="1h", help="request-log window, e.g. 15m, 2h, 1d")
    plan.add_argument("--workers", default="1,2,4,8", help="worker counts to predict")
    plan.add_argument("--target-rps", type=float, default=None, help="requests/s to plan for")
    plan.add_argument("--bench", default=None, help="a bench results JSON (its scaling "
                      "stage) or 'latest', instead of the request log")
    plan.add_argument("--model", default="minilm", help="with --bench: a model or a mix "
                      "like minilm=0.9,noop=0.1")
    plan.add_argument("--workers-per-gpu", type=int, default=None, help="also answer in GPUs")
    _command(commands, "demo", "local Kafka + real models + ClickHouse, end to end",
             "streamserve demo")
    bench = _command(commands, "bench", "benchmarks (own Kafka); report in bench/results",
                     "streamserve bench --quick --torch-threads 2")
    add_bench_options(bench)
    return parser


def _stack(commands: _Subparsers) -> None:
    stack = _command(commands, "stack", "local Apache Kafka (KRaft) for development",
                     "streamserve stack up --nodes 3")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True, metavar="COMMAND")
    up = _command(stack_commands, "up", "start (or restart) the local broker(s)",
                  "streamserve stack up --nodes 3 --fresh", action="stack up")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1,
                    help="brokers (3 for replication factor 3)")
    up.add_argument("--port", type=int, default=None,
                    help="broker port of node 1 (default: a free port)")
    up.add_argument("--fresh", action="store_true", help="discard earlier data and ports first")
    up.add_argument("--security", choices=("none", "sasl"), default="none",
                    help="sasl: SCRAM-SHA-512 logins and ACLs, the configured SASL user as admin")
    down = _command(stack_commands, "down", "stop the local broker(s) by PID",
                    "streamserve stack down --purge", action="stack down")
    down.add_argument("--purge", action="store_true", help="also delete the broker data")
    _command(stack_commands, "status", "what runs where", "streamserve stack status",
             action="stack status")


def _topics(commands: _Subparsers) -> None:
    topics = _command(commands, "topics", "create or describe the service topics",
                      "streamserve topics create --replication-factor 3")
    topic_commands = topics.add_subparsers(dest="topics_command", required=True,
                                           metavar="COMMAND")
    create = _command(topic_commands, "create", "create the missing service topics, then "
                      "describe them", "streamserve topics create --replication-factor 3",
                      action="topics create",
                      description="Create the requests, results, tokens and dead-letter topics, "
                      "and the compacted control and control-status topics, that do not exist "
                      "yet. The local stack is one broker, so the default "
                      "replication factor is 1; on `stack up --nodes 3` use 3 "
                      "(min.insync.replicas becomes 2).")
    create.add_argument("--replication-factor", type=int, default=None,
                        help="replicas per partition (default: "
                        "STREAMSERVE_TOPIC_REPLICATION_FACTOR, 1)")
    create.add_argument("--partitions", type=int, default=None,
                        help="partitions per topic (default: STREAMSERVE_TOPIC_PARTITIONS, 4)")
    _command(topic_commands, "describe", "partitions, leaders and in-sync replicas",
             "streamserve topics describe", action="topics describe")


def _send(commands: _Subparsers) -> None:
    send = _command(commands, "send", "publish one request, wait, print the result",
                    'streamserve send "Great product" --model minilm --task classify '
                    "--label good --label bad")
    send.add_argument("text", help="the prompt or the text to embed/classify")
    send.add_argument("--model", default=None, help="registry name (default: the first served "
                      "model, by name, that generates; else the first)")
    send.add_argument("--task", choices=("generate", "embed", "classify"), default=None,
                      help="default: the model's first task in the registry")
    send.add_argument("--label", action="append", default=[], help="classify label (repeat)")
    send.add_argument("--max-new-tokens", type=int, default=None,
                      help="generate: token budget (default: the worker's)")
    send.add_argument("--temperature", type=float, default=None,
                      help="generate: sampling temperature (default: greedy)")
    send.add_argument("--chat", action=argparse.BooleanOptionalAction, default=None,
                      help="generate: send the text as a user chat message (default: yes)")
    send.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    send.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the result")



def add_bench_options(parser: argparse.ArgumentParser) -> None:
    """bench/ lives in the source checkout, not in the installed package: its options are
    declared there once (bench/options.py, shared with `python -m bench`)."""
    root = str(SOURCE_ROOT)
    if not (SOURCE_ROOT / "bench" / "options.py").is_file():
        parser.description = "benchmarks: needs the source checkout (bench/ is not installed)"
        return
    if root not in sys.path:
        sys.path.insert(0, root)
    from bench.options import add_bench_arguments

    add_bench_arguments(parser)
