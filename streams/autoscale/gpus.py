"""`streamserve up --gpus`: which GPUs this machine has, and which one each worker slot gets.

Each worker process sees exactly one GPU (its `CUDA_VISIBLE_DEVICES`), as cuda:0, so one
registry (`device = "auto"` or `"cuda"`) serves every slot. The GPUs are listed without
importing torch in the supervisor (its CUDA context would hold memory on every GPU for the
supervisor's whole life): the supervisor's own CUDA_VISIBLE_DEVICES when set (an operator who
restricted it means those), else `nvidia-smi -L`, else torch's count in a child process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streams.errors import ConfigError

_SMI_LINE = re.compile(r"^GPU (\d+):", re.MULTILINE)
_GPU_ID = re.compile(r"^(\d+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")
_TORCH_COUNT = "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)"
Runner = Callable[[list[str]], str]  # argv -> stdout; raises OSError/CalledProcessError


@dataclass(frozen=True, slots=True)
class GpuInventory:
    ids: tuple[str, ...]  # what CUDA_VISIBLE_DEVICES of a child may name
    source: str  # how they were found, for messages


@dataclass(frozen=True, slots=True)
class GpuSlots:
    """Worker slot -> GPU: slots 0..K-1 on the first GPU, K..2K-1 on the second, ..."""

    gpus: tuple[str, ...]
    workers_per_gpu: int = 1

    @property
    def workers(self) -> int:
        return len(self.gpus) * self.workers_per_gpu

    def gpu_of(self, slot: int) -> str:
        return self.gpus[(slot // self.workers_per_gpu) % len(self.gpus)]

    def describe(self) -> str:
        return (f"{self.workers} worker(s) on GPU {','.join(self.gpus)} "
                f"({self.workers_per_gpu} per GPU, CUDA_VISIBLE_DEVICES per worker)")


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def visible_gpus(env: Mapping[str, str] | None = None, run: Runner = _run) -> GpuInventory:
    """The GPUs worker processes may be given (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        listed = [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
        # CUDA stops at the first entry that is not a device ("-1" is the usual "none").
        ids = _until_invalid(listed)
        return GpuInventory(tuple(ids), f"CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}")
    try:
        found = _SMI_LINE.findall(run(["nvidia-smi", "-L"]))
        return GpuInventory(tuple(found), "nvidia-smi -L")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        count = int(run([sys.executable, "-c", _TORCH_COUNT]).strip() or 0)
    except (OSError, subprocess.SubprocessError, ValueError):
        return GpuInventory((), "no nvidia-smi, and torch could not be asked")
    return GpuInventory(tuple(str(i) for i in range(count)), "torch.cuda.device_count()")


def _until_invalid(ids: list[str]) -> list[str]:
    out: list[str] = []
    for device in ids:
        if not _GPU_ID.match(device):
            break
        out.append(device)
    return out


def gpu_slots(gpus: str, workers_per_gpu: int,
              inventory: Callable[[], GpuInventory] = visible_gpus) -> GpuSlots:
    """--gpus all|0,1,... and --workers-per-gpu K, checked against the GPUs this machine has."""
    if workers_per_gpu < 1:
        raise ConfigError(f"--workers-per-gpu wants a count >= 1, got {workers_per_gpu}")
    seen = inventory()
    if gpus.strip() == "all":
        if not seen.ids:
            raise ConfigError(f"--gpus all: no GPU is visible here ({seen.source} lists none)"
                              "; run without --gpus for CPU workers")
        return GpuSlots(seen.ids, workers_per_gpu)
    wanted = [part.strip() for part in gpus.split(",") if part.strip()]
    bad = [g for g in wanted if not _GPU_ID.match(g)]
    if not wanted or bad:
        raise ConfigError(f"--gpus wants 'all' or GPU ids like 0,1 (or GPU-<uuid>), got {gpus!r}")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"--gpus names a GPU twice: {gpus!r}; use --workers-per-gpu to "
                          "run several workers on one GPU")
    if not seen.ids:
        raise ConfigError(f"--gpus {gpus}: no GPU is visible here ({seen.source} lists none)")
    missing = [g for g in wanted if g.isdigit() and g not in seen.ids]
    if missing:
        raise ConfigError(f"--gpus {gpus}: GPU {','.join(missing)} not visible here (visible: "
                          f"{','.join(seen.ids)}, from {seen.source})")
    return GpuSlots(tuple(wanted), workers_per_gpu)
