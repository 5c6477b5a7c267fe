"""What the figures were measured on: cores, CPU model, memory, load, threads, versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.runners import ROOT

PACKAGES = ("torch", "transformers", "aiokafka", "faust-streaming", "fastavro", "uvloop",
            "chdb", "clickhouse-connect", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return float("nan")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, text=True,
                               capture_output=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe(torch_threads: int, quix: str | None, kafka_version: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(), "memory_gib": _mem_gib(), "os": platform.platform(),
        "python": platform.python_version(), "torch_threads": torch_threads,
        "load_avg_at_start": os.getloadavg(), "kafka": kafka_version, "git": _git(),
        "versions": {**{p: _version(p) for p in PACKAGES},
                     "quixstreams": quix},
    }


def cpu_seconds(pid: int | None) -> float | None:
    """CPU time (user + system) a process has used so far; None when it cannot be read."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
