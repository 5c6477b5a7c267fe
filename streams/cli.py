"""`streamserve` command line: thin argument parsing over the library; settings built once here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from streams.config import Settings, load_settings
from streams.errors import ConfigError, StreamserveError

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


def _stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.stack import open_stack

    cluster = open_stack(settings, size=args.nodes, port=args.port, fresh=args.fresh,
                         secure=args.security == "sasl")
    if all(node.running for node in cluster.nodes):
        print(f"Kafka {cluster.kafka_version} already running (data in {cluster.directory})")
    else:
        seconds = cluster.up(timeout_s=settings.kafka_start_timeout_s)
        print(f"Kafka {cluster.kafka_version} ready in {seconds:.1f}s "
              f"({len(cluster.nodes)} node(s), data in {cluster.directory})")
    print(f"bootstrap: {cluster.bootstrap_servers}")
    print(f"use it:    export STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}")
    return 0


def _stack_down(args: argparse.Namespace, settings: Settings) -> int:
    from streams.stack import LocalCluster, stack_dir

    cluster = LocalCluster.load(stack_dir(settings))
    if cluster is None:
        print(f"no local stack recorded under {stack_dir(settings)}")
        return 0
    stopped = cluster.down(purge=args.purge)
    print(f"stopped PIDs {stopped}" if stopped else "no broker was running")
    print(f"removed {cluster.directory}" if args.purge else f"data kept in {cluster.directory}")
    return 0


def _stack_status(args: argparse.Namespace, settings: Settings) -> int:
    from streams.stack import LocalCluster, stack_dir

    cluster = LocalCluster.load(stack_dir(settings))
    if cluster is None:
        print(f"no local stack recorded under {stack_dir(settings)}")
        return 1
    rows = cluster.status()
    for row in rows:
        state = "running" if row["running"] else "stopped"
        print(f"node {row['node_id']}: {state:8} pid={row['pid']} bootstrap={row['bootstrap']} "
              f"controller_port={row['controller_port']} dir={row['directory']}")
    return 0 if all(row["running"] for row in rows) else 1


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_options import check_login
    from streams.worker.run import run_worker

    asyncio.run(check_login(settings))  # a refused login is one clear line, before any model
    return run_worker(settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.topics import describe_topics, ensure_topics, service_topics

    specs = service_topics(settings)
    if args.topics_command == "create":
        created = asyncio.run(ensure_topics(settings, specs))
        print(f"created {created}" if created else "all topics already exist")
    for topic in asyncio.run(describe_topics(settings, [spec.name for spec in specs])):
        leaders = [p["leader"] for p in topic["partitions"]]
        print(f"{topic['topic']}: {len(leaders)} partitions, leaders {leaders}"
              if topic["error_code"] == 0 else f"{topic['topic']}: missing")
    return 0


def _send(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client_cli import send_and_print

    return asyncio.run(send_and_print(settings, args))


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client_cli import tail_results

    return asyncio.run(tail_results(settings, args.limit))


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from streams.analytics import parse_since, stats_report

    print(stats_report(settings, parse_since(args.since), args.plot))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    return run_demo(settings)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    # bench/ lives in the source checkout, not in the installed package.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import importlib

    argv = ["--quick"] if args.quick else ["--smoke"] if args.smoke else []
    return int(importlib.import_module("bench.main").main(argv))


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.autoscale.up import run_supervisor

    return run_supervisor(settings, args.workers, args.min, args.max, args.gpus,
                          args.workers_per_gpu)


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from streams.analytics import parse_since
    from streams.capacity.report import parse_counts, plan_report

    print(plan_report(settings, parse_since(args.since), parse_counts(args.workers),
                      args.target_rps, args.bench, args.model, args.workers_per_gpu))
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamserve", description="Kafka-native inference service for transformer models")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="local Apache Kafka (KRaft) for development")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_commands.add_parser("up", help="start (or restart) the local broker(s)")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    up.add_argument("--port", type=int, default=None, help="broker port of node 1 (default: free)")
    up.add_argument("--fresh", action="store_true", help="discard earlier data and ports first")
    up.add_argument("--security", choices=("none", "sasl"), default="none",
                    help="sasl: SCRAM-SHA-512 logins and ACLs, the configured SASL user as admin")
    up.set_defaults(handler=_stack_up)
    down = stack_commands.add_parser("down", help="stop the local broker(s) by PID")
    down.add_argument("--purge", action="store_true", help="also delete the broker data")
    down.set_defaults(handler=_stack_down)
    stack_commands.add_parser("status", help="what runs where").set_defaults(handler=_stack_status)

    commands.add_parser("config", help="print the effective settings, secrets masked"
                        ).set_defaults(handler=_config)
    commands.add_parser("worker", help="run a worker (models from the registry)"
                        ).set_defaults(handler=_worker)
    topics = commands.add_parser("topics", help="create or describe the service topics")
    topics.add_argument("topics_command", choices=("create", "describe"))
    topics.set_defaults(handler=_topics)
    send = commands.add_parser("send", help="publish one request, wait, print the result")
    send.add_argument("text")
    send.add_argument("--model", default="smollm2")
    send.add_argument("--task", choices=("generate", "embed", "classify"), default=None,
                      help="default: generate for smollm2, embed otherwise")
    send.add_argument("--label", action="append", default=[], help="classify label (repeat)")
    send.add_argument("--max-new-tokens", type=int, default=None)
    send.add_argument("--temperature", type=float, default=None)
    send.add_argument("--chat", action="store_true", help="send the text as a user message")
    send.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    send.add_argument("--timeout", type=float, default=120.0)
    send.set_defaults(handler=_send)
    tail = commands.add_parser("tail", help="follow the results topic")
    tail.add_argument("--limit", type=int, default=0, help="stop after N results (0 = never)")
    tail.set_defaults(handler=_tail)
    stats = commands.add_parser("stats", help="request analytics from ClickHouse")
    stats.add_argument("--since", default="15m", help="window, e.g. 90s, 15m, 2h, 1d")
    stats.add_argument("--plot", type=Path, default=None, help="write a latency chart (PNG)")
    stats.set_defaults(handler=_stats)
    scaled = commands.add_parser("up", help="run local workers: N, or autoscaled on lag")
    scaled.add_argument("--workers", default="auto", help="'auto' (default) or a fixed count")
    scaled.add_argument("--min", type=int, default=None, help="autoscaling lower bound")
    scaled.add_argument("--max", type=int, default=None, help="autoscaling upper bound")
    scaled.add_argument("--gpus", default=None, help="'all' or GPU ids like 0,1: one worker "
                        "per GPU, each seeing only its own (CUDA_VISIBLE_DEVICES)")
    scaled.add_argument("--workers-per-gpu", type=int, default=1,
                        help="with --gpus: K workers share each GPU (small models)")
    scaled.set_defaults(handler=_up)
    plan = commands.add_parser("plan", help="workers for a target rate, from measured "
                               "throughput at N workers (Amdahl, Gustafson, USL fits)")
    plan.add_argument("--since", default="1h", help="request-log window, e.g. 15m, 2h, 1d")
    plan.add_argument("--workers", default="1,2,4,8", help="worker counts to predict")
    plan.add_argument("--target-rps", type=float, default=None, help="requests/s to plan for")
    plan.add_argument("--bench", default=None, help="a bench results JSON (its scaling "
                      "stage) or 'latest', instead of the request log")
    plan.add_argument("--model", default="minilm", help="with --bench: a model or a mix "
                      "like minilm=0.9,noop=0.1")
    plan.add_argument("--workers-per-gpu", type=int, default=None, help="also answer in GPUs")
    plan.set_defaults(handler=_plan)
    commands.add_parser("demo", help="local Kafka + real models + ClickHouse, end to end"
                        ).set_defaults(handler=_demo)
    bench = commands.add_parser("bench", help="benchmarks (own Kafka); report in bench/results")
    bench.add_argument("--quick", action="store_true", help="under 10 minutes on 2 cores")
    bench.add_argument("--smoke", action="store_true", help="tiny: keeps the harness working")
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:  # names fields only: pydantic's own text quotes secrets
        print(f"streamserve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="DEBUG" if args.verbose else settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Library chatter (group joins, service start/stop lines) buries our own output.
        for noisy in ("aiokafka", "faust", "mode", "streams.app", "ContinuousBatchingLogger"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except StreamserveError as exc:
        print(f"streamserve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
