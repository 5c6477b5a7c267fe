"""Where the worker's time goes per record: py-spy on the real worker with the no-op model.

    .venv/bin/python -m bench.profile [--records 100000] [--rate 250]

Starts a private Kafka, pre-loads the records, starts the worker (bench.contenders.ours), attaches
`py-spy record` once the worker is loaded and warm, and stops both when every result is in.
Prints the hottest functions (inclusive and own samples) converted to µs per record (sampled
non-idle time of the worker's threads ÷ records; on a busy machine that includes time a thread
was runnable but waiting for a core, so read the shares first), writes that summary to
`bench/results/profile-<stamp>.md` and the raw collapsed stacks (flamegraph input) to the
git-ignored `bench/results/tmp/`. py-spy is not a project dependency: `.venv/bin/pip install
py-spy`.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import say, steady_rate
from bench.kafka_io import local_kafka, read_results
from bench.overhead import noop_topics
from bench.procs import config_for, started
from bench.runners import NOOP, ROOT

Stacks = dict[tuple[str, ...], int]


def load_stacks(path: Path) -> Stacks:
    stacks: Stacks = collections.Counter()
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames:
            stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(where).parts
    tail = "/".join(parts[-2:]) if len(parts) > 1 else where
    return f"{name} ({tail})"


_WRAPPERS = ("runpy", "contenders/", "asyncio/runners.py", "uvloop/__init__.py", "threading.py",
             "futures/thread.py", "streams/worker/app.py", "worker/run.py")


def _module(frame: str) -> str:
    """The package area a frame's own time is charged to."""
    where = frame.partition(" (")[2]
    for area in ("streams/wire/codec.py", "streams/worker/metrics.py", "streams/worker/",
                 "streams/", "models/", "aiokafka/", "prometheus_client/", "fastavro/",
                 "asyncio/", "uvloop/", "faust/", "mode/"):
        if area in where:
            return area
    return "other"


def hot_spots(stacks: Stacks, top: int) -> dict[str, list[tuple[str, int]]]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    for frames, count in stacks.items():
        names = [_short(f) for f in frames[1:]]  # frames[0] is the thread
        for name in set(names):
            if not any(wrapper in name for wrapper in _WRAPPERS):
                inclusive[name] += count
        if names:
            own[names[-1]] += count
            areas[_module(frames[-1])] += count
    return {"inclusive (wrappers left out)": inclusive.most_common(top),
            "own (self)": own.most_common(top), "own time by area": areas.most_common()}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / "tmp" / f"profile-{stamp}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with local_kafka() as cluster, tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        from bench.context import Context
        from bench.modes import QUICK

        ctx = Context(QUICK, cluster.bootstrap_servers, Path(tmp), 2, None)
        topics = noop_topics(ctx, "profile", args.records)
        run_topics = topics.with_new_output()
        run_topics.create()
        config = config_for("ours", NOOP, run_topics, ctx.workdir, "profiled", batch_size=1000)
        with started([config], ctx.workdir) as procs:
            spy = subprocess.Popen([py_spy, "record", "--pid", str(procs[0].popen.pid),
                                    "--rate", str(args.rate), "--format", "raw", "--threads",
                                    "--output", str(out), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            began = time.monotonic()
            from bench.kafka_io import wait_count

            count = wait_count(run_topics.bootstrap, run_topics.results, args.records, 600)
            elapsed = time.monotonic() - began
            spy.send_signal(signal.SIGINT)
            _, err = spy.communicate(timeout=60)
        rows = read_results(run_topics.bootstrap, run_topics.results, count)
    rate = steady_rate([stamp_ms for stamp_ms, _ in rows])
    if not out.exists():
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}")
        return 1
    stacks = load_stacks(out)
    total = sum(stacks.values())
    cpu_us_per_record = total / args.rate / count * 1e6
    lines = [f"# Worker profile {stamp}: no-op model, py-spy at {args.rate} Hz", "",
             f"{count} records in {elapsed:.1f}s, steady {rate:,.0f}/s; {total} samples = "
             f"{cpu_us_per_record:.1f} µs of sampled (non-idle) time per record. "
             f"Raw stacks: {out.relative_to(ROOT)}"]
    for title, table in hot_spots(stacks, args.top).items():
        lines += ["", f"## {title}", "", "| share | µs/record | function |", "|---:|---:|---|"]
        for name, samples in table:
            share = samples / total
            lines.append(f"| {share:.1%} | {share * cpu_us_per_record:.1f} | `{name}` |")
    summary = out.parent.parent / f"profile-{stamp}.md"
    summary.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    say(f"wrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
