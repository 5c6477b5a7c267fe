"""Where a model runs and in which precision: the registry's words -> one device and one dtype.

Pure: the machine's facts (how many CUDA devices this process sees, whether they compute in
bfloat16) come in as a `DeviceFacts`, so every branch is tested on a machine without a GPU;
`models.hf.device_facts()` reads them from torch in the worker.

- device "auto": the first CUDA device when there is one, else the CPU. "cuda" = "cuda:0".
  "cuda:N" counts the devices this process sees: a worker started by `streamserve up --gpus`
  sees exactly one (CUDA_VISIBLE_DEVICES), as cuda:0.
- dtype "auto": bfloat16 on a GPU that supports it, float16 on an older GPU (half the memory
  traffic of float32; inference needs no float32 master weights), float32 on the CPU and MPS
  (CPU kernels for half types are slower than float32 on most CPUs).
- device_fallback: what the operator allows when a CUDA device is asked for and the process
  sees none: "none" (default: refuse, so a GPU deployment never silently runs 50x slower) or
  "cpu". An index beyond the visible devices is always an error: that is a wrong registry or
  a wrong CUDA_VISIBLE_DEVICES, not a machine without a GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from models.errors import ModelLoadError

DType = Literal["auto", "float32", "bfloat16", "float16"]
Precision = Literal["float32", "bfloat16", "float16"]
Fallback = Literal["cpu", "none"]
DTYPES: tuple[DType, ...] = ("auto", "float32", "bfloat16", "float16")
FALLBACKS: tuple[Fallback, ...] = ("cpu", "none")
DEVICE_PATTERN = re.compile(r"^(cpu|auto|cuda|cuda:\d+|mps)$")
DEVICE_WORDS = "auto, cpu, cuda, cuda:N or mps"


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What this process can run on."""

    cuda_count: int  # CUDA devices visible to this process
    bf16_supported: bool = False  # of the CUDA devices (torch.cuda.is_bf16_supported)
    mps_available: bool = False
    cuda_visible: str | None = None  # CUDA_VISIBLE_DEVICES as set for this process, if set


@dataclass(frozen=True, slots=True)
class Placement:
    device: str  # "cpu", "cuda:N" or "mps"
    dtype: Precision
    note: str = ""  # set when the placement is not what was asked for (a fallback): log it


def place(device: str, dtype: DType, fallback: Fallback, facts: DeviceFacts,
          model: str = "model") -> Placement:
    """The device and dtype `model` runs with; `ModelLoadError` (naming the model, what was
    asked, what the process sees and the fallback allowed) when the machine cannot do it."""
    if not DEVICE_PATTERN.match(device):
        raise ModelLoadError(f"{model}: device must be {DEVICE_WORDS}, got {device!r}")
    note = ""
    if device == "auto":
        where = "cuda:0" if facts.cuda_count else "cpu"
    elif device.startswith("cuda"):
        where, note = _cuda(device, fallback, facts, model)
    elif device == "mps" and not facts.mps_available:
        raise ModelLoadError(f"{model}: device 'mps' requested but MPS is not available")
    else:
        where = device
    return Placement(where, _precision(dtype, where, facts, model), note)


def _cuda(device: str, fallback: Fallback, facts: DeviceFacts, model: str) -> tuple[str, str]:
    index = int(device.partition(":")[2] or 0)
    if facts.cuda_count == 0:
        seen = _visible(facts)
        if fallback == "cpu":
            return "cpu", (f"{model}: device {device!r} requested but this process sees no "
                           f"CUDA device{seen}; running on the CPU (device_fallback = 'cpu')")
        raise ModelLoadError(
            f"{model}: device {device!r} requested but this process sees no CUDA device{seen}"
            "; device_fallback = 'none' allows no fallback (set device_fallback = 'cpu' to run "
            "on the CPU instead, or device = 'auto')")
    if index >= facts.cuda_count:
        last = facts.cuda_count - 1
        raise ModelLoadError(
            f"{model}: device {device!r} requested but this process sees "
            f"{facts.cuda_count} CUDA device(s), cuda:0..cuda:{last}{_visible(facts)}"
            " (a worker started with --gpus sees its own GPU as cuda:0: use 'cuda' or 'auto')")
    return f"cuda:{index}", ""


def _precision(dtype: DType, device: str, facts: DeviceFacts, model: str) -> Precision:
    on_cuda = device.startswith("cuda")
    if dtype == "auto":
        if not on_cuda:
            return "float32"
        return "bfloat16" if facts.bf16_supported else "float16"
    if dtype == "bfloat16" and on_cuda and not facts.bf16_supported:
        raise ModelLoadError(f"{model}: dtype 'bfloat16' requested but the GPU does not "
                             "support it; use 'float16' or 'auto'")
    return dtype


def _visible(facts: DeviceFacts) -> str:
    return "" if facts.cuda_visible is None else f" (CUDA_VISIBLE_DEVICES={facts.cuda_visible!r})"
