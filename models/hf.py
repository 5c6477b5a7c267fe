"""Shared transformers/torch plumbing: threads, devices, dtypes, safe loading options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from models.errors import ModelLoadError

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


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {name!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {name!r}: only {torch.cuda.device_count()} GPUs")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {name!r} requested but MPS is not available")
    return device


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
