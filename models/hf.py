"""Shared transformers/torch plumbing: threads, devices, dtypes, safe loading options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from models.errors import ModelLoadError
from models.placement import DeviceFacts, Placement, place
from models.registry import ModelSpec

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Never run code shipped with weights, never fall back to pickled .bin files, never go online.
SAFE_LOAD: dict[str, Any] = {
    "trust_remote_code": False,
    "use_safetensors": True,
    "local_files_only": True,
}


def configure_threads(torch_threads: int | None) -> None:
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)


def device_facts() -> DeviceFacts:
    """What this process can run on, as torch sees it (CUDA_VISIBLE_DEVICES applied)."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return DeviceFacts(
        cuda_count=count,
        bf16_supported=bool(count and torch.cuda.is_bf16_supported()),
        mps_available=torch.backends.mps.is_available(),
        cuda_visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )


def placement(spec: ModelSpec) -> Placement:
    """The registry entry's device and dtype resolved on this machine (models/placement.py);
    raises `ModelLoadError` when the machine cannot do what it asks."""
    return place(spec.device, spec.dtype, spec.device_fallback, device_facts(), spec.key)


def torch_device(where: Placement) -> torch.device:
    return torch.device(where.device)


def torch_dtype(where: Placement) -> torch.dtype:
    return _DTYPES[where.dtype]


def model_device(model: Any) -> torch.device:
    """Where a loaded model's weights are: the one place the runner sends its batches."""
    return torch.device(model.device)


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=False, local_files_only=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer from {path}: {exc}") from exc
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise ModelLoadError(f"{path}: unexpected tokenizer type {type(tokenizer).__name__}")
    return tokenizer


def release(device: torch.device) -> None:
    """Give cached accelerator memory back after a model is dropped."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
