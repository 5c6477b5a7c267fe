"""The models the benchmark runs: the no-op fake, MiniLM and SmolLM2, loaded like the worker does
(`models.loading.load_runner`) with the batch size the measurement needs.

`python -m bench --device cuda|cpu --registry PATH` sets BENCH_DEVICE and BENCH_REGISTRY for
this process and every contender it starts (they inherit the environment): the device every
model is loaded on, and the registry they come from (the GPU run's random-weight models,
bench/gpu/models.py). Unset: the shipped registry, each entry's own device.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from models.base import ModelInput, ModelOutput, ModelRunner, Task
from models.loading import load_runner
from models.registry import ModelSpec, load_registry

NOOP = "noop"
MINILM = "minilm"
SMOLLM = "smollm2"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".streamserve" / "models"  # converted GGUF models, shared with the worker
DEVICE_ENV, REGISTRY_ENV = "BENCH_DEVICE", "BENCH_REGISTRY"


def bench_spec(name: str) -> ModelSpec:
    """`name`'s registry entry, on the bench's device when one was chosen."""
    registry = os.environ.get(REGISTRY_ENV)
    spec = load_registry(Path(registry) if registry else None).get(name)
    device = os.environ.get(DEVICE_ENV)
    return dataclasses.replace(spec, device=device) if device else spec


class NoopRunner:
    """The no-op model of the overhead stages: answers every input with the same 16-float
    embedding and computes nothing, so what is measured is the framework around it.

    (The test suite's FakeRunner hashes each text into its vector, ≈16 µs a record of pure
    Python; in the worker's model thread that work also contends for the GIL with the event
    loop, a cost no real model brings: torch computes in C without holding the GIL.)
    """

    tasks: tuple[Task, ...] = ("embed",)
    max_input_tokens = 512
    max_new_tokens = 1
    _VECTOR = (0.25,) * 16

    def __init__(self, batch_size: int) -> None:
        self.name, self.version, self.max_batch_size = NOOP, "1", batch_size

    def count_tokens(self, item: ModelInput) -> int:
        return len(item.text or "") // 4 + 1

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        return [ModelOutput(embedding=list(self._VECTOR), tokens_in=1) for _ in batch]

    def close(self) -> None:
        pass


def load_model(name: str, batch_size: int, torch_threads: int | None,
               cache_dir: Path = DEFAULT_CACHE) -> ModelRunner:
    """A runner for `name` whose own max batch size is `batch_size` (it never splits ours)."""
    if name == NOOP:
        return NoopRunner(batch_size)
    spec = dataclasses.replace(bench_spec(name), max_batch_size=batch_size)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    return load_runner(spec, cache_dir, torch_threads)


def engine_of(name: str) -> str:
    """How the registry runs `name`: "static" batches or a "continuous"-batching engine."""
    if name == NOOP:
        return "static"
    return str(getattr(bench_spec(name), "engine", "static"))


def task_of(name: str) -> Task:
    return "generate" if name == SMOLLM else "embed"

