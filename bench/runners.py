"""The models the benchmark runs: the no-op fake, MiniLM and SmolLM2, loaded like the worker does
(`models.loading.load_runner`) with the batch size the measurement needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models.base import ModelRunner, Task
from models.fake import FakeRunner, fake_spec
from models.loading import load_runner
from models.registry import load_registry

NOOP = "noop"
MINILM = "minilm"
SMOLLM = "smollm2"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".streamserve" / "models"  # converted GGUF models, shared with the worker


def load_model(name: str, batch_size: int, torch_threads: int | None,
               cache_dir: Path = DEFAULT_CACHE) -> ModelRunner:
    """A runner for `name` whose own max batch size is `batch_size` (it never splits ours)."""
    if name == NOOP:
        return FakeRunner(fake_spec(NOOP, tasks=("embed",), max_batch_size=batch_size,
                                    max_input_tokens=512, fake_delay_s=0.0))
    spec = dataclasses.replace(load_registry().get(name), max_batch_size=batch_size)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    return load_runner(spec, cache_dir, torch_threads)


def engine_of(name: str) -> str:
    """How the registry runs `name`: "static" batches or a "continuous"-batching engine."""
    if name == NOOP:
        return "static"
    return str(getattr(load_registry().get(name), "engine", "static"))


def task_of(name: str) -> Task:
    return "generate" if name == SMOLLM else "embed"

