"""The benchmark's command-line options, declared once for `python -m bench` and
`streamserve bench` (this module imports nothing heavy, so both `--help`s stay fast)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.gpu import options as device_options
from bench.modes import ALL_STAGES

RESULTS = Path(__file__).resolve().parent / "results"


def default_torch_threads() -> int:
    """One core fewer than the machine has. Measured on 2 cores (bench/README.md): with both
    cores given to torch, the broker and the load generator, which work per request under
    streaming arrivals, stall torch's parallel regions and a batch ran 1.5x slower than alone,
    so the capacity measured on a burst did not hold under Poisson load."""
    return max(1, (os.cpu_count() or 2) - 1)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer batch sizes and records "
                      "(under 10 minutes on 2 cores)")
    size.add_argument("--smoke", action="store_true", help="tiny, no-op model and MiniLM B=1 "
                      "only: keeps the harness from rotting, measures nothing")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="where the JSON, markdown and PNGs go")
    parser.add_argument("--torch-threads", type=int, default=default_torch_threads(),
                        help="torch intra-op threads of every model process (cores - 1, at "
                        "least 1: the broker, the load generator and the worker's event "
                        "loop share this machine and need a core)")
    parser.add_argument("--stages", default=None,
                        help=f"comma-separated subset of {','.join(ALL_STAGES)} (default: "
                        "every stage of the mode)")
    parser.add_argument("--latency-batch", type=int, default=None,
                        help="max_batch_size of the latency stage's worker (default: the "
                        "smallest B whose T_off is within 5%% of T_off(B*))")
    parser.add_argument("--no-quix", action="store_true", help="skip the Quix Streams contender")
    parser.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "default"),
                        default="PASSIVE", help="OMP_WAIT_POLICY for this process and every "
                        "contender (with libgomp's spinning default, 2 torch threads on 2 busy "
                        "cores run 5-10x slower)")
    device_options.add_arguments(parser)
