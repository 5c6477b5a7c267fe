"""`streamserve` command line: what each subcommand runs (the parser is `streams.cli.parser`);
settings are built once here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence

from streams.cli.log_setup import configure_logging
from streams.cli.models import MODEL_COMMANDS, run_models
from streams.cli.parser import build_parser
from streams.config import Settings, load_settings
from streams.errors import BrokerUnreachable, ConfigError, StreamserveError

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


def _stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.stack import open_stack

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
    from streams.kafka.stack import LocalCluster, stack_dir

    cluster = LocalCluster.load(stack_dir(settings))
    if cluster is None:
        print(f"no local stack recorded under {stack_dir(settings)}")
        return 0
    stopped = cluster.down(purge=args.purge)
    print(f"stopped PIDs {stopped}" if stopped else "no broker was running")
    print(f"removed {cluster.directory}" if args.purge else f"data kept in {cluster.directory}")
    return 0


def _stack_status(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.stack import LocalCluster, stack_dir

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
    from streams.kafka.options import check_login
    from streams.worker.run import run_worker

    asyncio.run(check_login(settings))  # a refused login is one clear line, before any model
    return run_worker(settings)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.topics import control_topics, describe_topics, ensure_topics, service_topics

    replication = getattr(args, "replication_factor", None)
    specs = (service_topics(settings, replication, getattr(args, "partitions", None))
             + control_topics(settings, replication))
    if args.action == "topics create":
        created = asyncio.run(ensure_topics(settings, specs))
        print(f"created {created}" if created else "all topics already exist")
    for topic in asyncio.run(describe_topics(settings, [spec.name for spec in specs])):
        if topic["error_code"] != 0:
            print(f"{topic['topic']}: missing (`streamserve topics create` creates it)")
            continue
        partitions = topic["partitions"]
        replicas = len(partitions[0]["replicas"]) if partitions else 0
        print(f"{topic['topic']}: {len(partitions)} partitions, replication factor {replicas}, "
              f"leaders {[p['leader'] for p in partitions]}, "
              f"in sync {[len(p['isr']) for p in partitions]}")
    return 0


def _send(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client.commands import send_and_print

    return asyncio.run(send_and_print(settings, args))


def _tail(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client.commands import tail_results

    return asyncio.run(tail_results(settings, args.limit, args.from_beginning))


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from streams.analytics.stats import parse_since, stats_report

    print(stats_report(settings, parse_since(args.since), args.plot))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.demo import run_demo

    return run_demo(settings)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.parser import SOURCE_ROOT

    if not (SOURCE_ROOT / "bench").is_dir():
        print("streamserve bench needs the source checkout (bench/ is not installed)",
              file=sys.stderr)
        return 2
    import importlib  # bench/ is on sys.path since the parser declared its options

    return int(importlib.import_module("bench.main").run(args))


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.autoscale.up import run_supervisor

    return run_supervisor(settings, args.workers, args.min, args.max, args.gpus,
                          args.workers_per_gpu)


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from streams.analytics.capacity.report import parse_counts, plan_report
    from streams.analytics.stats import parse_since

    print(plan_report(settings, parse_since(args.since), parse_counts(args.workers),
                      args.target_rps, args.bench, args.model, args.workers_per_gpu))
    return 0


def _config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), indent=2, default=str))
    return 0


def _running_stack_hint(settings: Settings) -> str:
    """The usual first mistake: `stack up` ran, its address was not exported."""
    from streams.kafka.stack import LocalCluster, stack_dir

    cluster = LocalCluster.load(stack_dir(settings))
    if cluster is None or not all(node.running for node in cluster.nodes):
        return ""
    if cluster.bootstrap_servers == settings.kafka_bootstrap_servers:
        return ""
    return (f" (the local stack runs at {cluster.bootstrap_servers}: export "
            f"STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers})")


HANDLERS: dict[str, Handler] = {
    "stack up": _stack_up, "stack down": _stack_down, "stack status": _stack_status,
    "config": _config, "worker": _worker, "topics create": _topics, "topics describe": _topics,
    "send": _send, "tail": _tail, "stats": _stats, "up": _up, "plan": _plan, "demo": _demo,
    "bench": _bench, **{f"models {name}": run_models for name in MODEL_COMMANDS},
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:  # names fields only: pydantic's own text quotes secrets
        print(f"streamserve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, args.verbose)
    handler = HANDLERS[args.action]
    try:
        return handler(args, settings)
    except BrokerUnreachable as exc:
        print(f"streamserve: {exc}{_running_stack_hint(settings)}", file=sys.stderr)
        return 1
    except StreamserveError as exc:
        print(f"streamserve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
