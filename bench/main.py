"""`python -m bench [--quick|--smoke]`: start a private Kafka, run the stages, write the report.

Stages, in order (each its own module): ceiling, pipeline, overhead, naive, latency, scaling,
sink, delivery, tracing. A stage that fails is recorded in the report and the others still
run; Ctrl-C (or SIGTERM) stops everything this process started, Kafka included.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench import (
    ceiling,
    control_cost,
    delivery,
    latency,
    naive,
    overhead,
    pipeline,
    report,
    scaling,
    sink,
    tracing_cost,
)
from bench.common import say
from bench.context import Context
from bench.gpu import options as device_options
from bench.gpu.modes import device_mode
from bench.machine import cpu_seconds, describe
from bench.modes import FULL, QUICK, SMOKE
from bench.options import add_bench_arguments
from bench.quix_env import build, quix_python, quix_version

STAGES: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ceiling": ceiling.run, "pipeline": pipeline.run, "overhead": overhead.run,
    "naive": naive.run, "latency": latency.run, "scaling": scaling.run, "sink": sink.run,
    "delivery": delivery.run, "tracing": tracing_cost.run,
    "control": control_cost.run,
}
NOTES = [
    "Contenders run as separate processes (the real worker: WorkerEngine in the faust app under "
    "uvloop, with Prometheus metrics; request-log sink off except in the sink stage).",
    "Naive contenders call the model on the event loop / processing thread, once per request, "
    "as a first faust agent or Quix app does.",
    "Quix Streams runs from .cache/bench-quix/venv (pydantic-settings<2.16 conflicts with the "
    "project pin); torch, transformers and streamserve come from the project venv.",
]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_bench_arguments(parser)
    return parser.parse_args(argv)


def _build_quix_env() -> str | None:
    """The Quix Streams contender's own venv, built on first use (`--no-quix` skips it)."""
    say("building the Quix Streams venv once (.cache/bench-quix; `--no-quix` skips it)")
    try:
        build(progress=False)
    except (OSError, subprocess.CalledProcessError) as exc:
        say(f"Quix Streams venv not built, its contender is skipped: {exc!r}")
        return None
    return quix_version()


def _draw(data: dict[str, Any], out: Path, stamp: str) -> list[Path]:
    try:
        from bench import plots
    except ImportError as exc:  # matplotlib is not carried to the GPU machine
        say(f"no plots ({exc})")
        return []
    drawn = (plots.throughput_vs_batch(data, out / f"{stamp}-throughput.png"),
             plots.latency_cdf(data, out / f"{stamp}-latency-cdf.png"))
    return [p for p in drawn if p is not None]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse(argv))


def run(args: argparse.Namespace) -> int:
    """One benchmark run with the options of `add_bench_arguments` (`streamserve bench` parses
    them itself and calls this)."""
    started = time.monotonic()
    mode = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.device:
        mode = device_mode(args.smoke)
    device_options.apply(args)
    stages = args.stages.split(",") if args.stages else list(mode.stages)
    unknown = set(stages) - set(STAGES)
    if unknown:
        print(f"unknown stages {sorted(unknown)}; known: {list(STAGES)}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    # aiokafka retries (e.g. NotLeaderForPartition right after a topic is created) are noise here.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    if args.omp_wait_policy != "default":  # before torch loads libgomp; contenders inherit it
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    import torch  # after parsing: --help stays fast

    torch.set_num_threads(args.torch_threads)
    quix, quix_release = None, None
    if "naive" in stages and not args.no_quix and mode.naive_n:
        quix_release = quix_version() or _build_quix_env()
        quix = quix_python() if quix_release else None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    data: dict[str, Any] = {"meta": {
        "stamp": stamp, "mode": mode.name, "measurement": mode.is_measurement, "reps": mode.reps,
        "stages": stages, "machine": describe(args.torch_threads, quix_release,
                                                 device_options.broker_name(args)),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default (unset)"),
        **device_options.meta(args)}}
    say(f"benchmark {mode.name}: stages {stages}, {mode.reps} reps, torch threads "
        f"{args.torch_threads}, quix {'on' if quix else 'off'}")
    try:
        with device_options.broker(args) as (bootstrap, broker_pid), \
                tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            ctx = Context(mode, bootstrap, Path(tmp), args.torch_threads, quix,
                          data, args.latency_batch)
            for stage in stages:
                begun = time.monotonic()
                broker_cpu = cpu_seconds(broker_pid)
                try:
                    data[stage] = STAGES[stage](ctx)
                except Exception as exc:  # noqa: BLE001 - recorded; the other stages still run
                    traceback.print_exc()
                    data[stage] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
                    say(f"stage {stage} FAILED: {exc!r}"[:500])
                data[stage]["stage_seconds"] = round(time.monotonic() - begun, 1)
                # The broker shares the cores with what is measured: how much it took.
                broker_cpu_after = cpu_seconds(broker_pid)
                if broker_cpu is not None and broker_cpu_after is not None:
                    data[stage]["broker_cores"] = round(
                        (broker_cpu_after - broker_cpu) / max(1e-9, time.monotonic() - begun), 3)
                say(f"stage {stage} done in {data[stage]['stage_seconds']:.0f}s")
    except KeyboardInterrupt:
        say("interrupted: everything started was stopped; writing what was measured")
        data["meta"]["interrupted"] = True
    data["meta"]["wall_s"] = round(time.monotonic() - started, 1)
    data["meta"]["machine"]["load_avg_at_end"] = os.getloadavg()
    data["notes"] = NOTES if quix or "naive" not in stages else NOTES[:2]
    drawn = _draw(data, args.out, stamp)
    json_path, md_path = report.write(data, args.out, drawn)
    say(f"wrote {json_path}, {md_path}, {args.out / 'latest.md'}"
        + "".join(f", {p}" for p in drawn))
    print(md_path.read_text())
    return 130 if data["meta"].get("interrupted") else 0
