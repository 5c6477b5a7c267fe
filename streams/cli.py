"""`streamserve` command line: thin argument parsing over the library; settings built once here."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from streams.config import Settings
from streams.errors import StreamserveError

logger = logging.getLogger(__name__)

Handler = Callable[[argparse.Namespace, Settings], int]


def _stack_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.stack import open_stack

    cluster = open_stack(settings, size=args.nodes, port=args.port, fresh=args.fresh)
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


def _config(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamserve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="local Apache Kafka (KRaft) for development")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_commands.add_parser("up", help="start (or restart) the local broker(s)")
    up.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    up.add_argument("--port", type=int, default=None, help="broker port of node 1 (default: free)")
    up.add_argument("--fresh", action="store_true", help="discard earlier data and ports first")
    up.set_defaults(handler=_stack_up)
    down = stack_commands.add_parser("down", help="stop the local broker(s) by PID")
    down.add_argument("--purge", action="store_true", help="also delete the broker data")
    down.set_defaults(handler=_stack_down)
    stack_commands.add_parser("status", help="what runs where").set_defaults(handler=_stack_status)

    commands.add_parser("config", help="print the effective settings, secrets masked"
                        ).set_defaults(handler=_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"streamserve: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="DEBUG" if args.verbose else settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
