"""The device bench's options of `python -m bench`: which device, which registry, which broker.

`--device` picks the device stages (bench/gpu/modes.py) and loads every model of this process
and of every contender on that device (BENCH_DEVICE, inherited); `--registry` names the
registry the models come from (BENCH_REGISTRY); `--bootstrap` uses a broker that is already
running instead of starting Apache Kafka, and `--broker-kind tansu` tells the harness and the
workers what that broker cannot do (bench.kafka_io.BrokerTraits).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import kafka_io
from bench.kafka_io import KAFKA_VERSION, local_kafka
from bench.runners import DEVICE_ENV, REGISTRY_ENV


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device runs (bench/gpu/README.md)")
    group.add_argument("--device", choices=("cuda", "cpu"), default=None,
                       help="the device stages (ceiling up to B=1024, SmolLM2 continuous, "
                       "pipeline E, the no-op worker, 1 vs 2 workers on one device), every "
                       "model on this device; with --smoke tiny")
    group.add_argument("--registry", type=Path, default=None,
                       help="models from this registry (default models/registry.toml)")
    group.add_argument("--bootstrap", default=None,
                       help="a running broker to use instead of starting Apache Kafka")
    group.add_argument("--broker-pid", type=int, default=None,
                       help="with --bootstrap: its PID, to record its CPU per stage")
    group.add_argument("--broker-kind", choices=("kafka", "tansu"), default="kafka",
                       help="tansu: producers without idempotence, records counted by reading")


def apply(args: argparse.Namespace) -> None:
    """Environment for this process and the contenders it starts (they inherit it)."""
    if args.device:
        os.environ[DEVICE_ENV] = args.device
    if args.registry:
        os.environ[REGISTRY_ENV] = str(args.registry.resolve())
    if args.broker_kind == "tansu":
        kafka_io.BROKER.idempotent = kafka_io.BROKER.exact_end_offsets = False
        os.environ["STREAMSERVE_KAFKA_ENABLE_IDEMPOTENCE"] = "false"


@contextlib.contextmanager
def broker(args: argparse.Namespace) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, broker PID or None): the running one of --bootstrap, or our own Kafka."""
    if args.bootstrap:
        yield args.bootstrap, args.broker_pid
        return
    with local_kafka() as cluster:
        yield cluster.bootstrap_servers, cluster.nodes[0].pid


def broker_name(args: argparse.Namespace) -> str:
    if args.bootstrap and args.broker_kind == "tansu":
        return "tansu (Kafka-compatible, memory storage)"
    return f"{'external ' if args.bootstrap else ''}{KAFKA_VERSION}"


def meta(args: argparse.Namespace) -> dict[str, Any]:
    """What the run measured on, beside bench.machine.describe()."""
    out: dict[str, Any] = {"broker": broker_name(args) if args.bootstrap else
                           f"Apache Kafka {KAFKA_VERSION} (started by the bench)"}
    if args.device:
        out["device"] = describe_device(args.device)
    if args.registry:
        out["registry"] = str(args.registry)
    return out


def describe_device(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"requested": device,
                            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    count=torch.cuda.device_count(), bf16=torch.cuda.is_bf16_supported(),
                    torch_cuda=torch.version.cuda)
    return info
