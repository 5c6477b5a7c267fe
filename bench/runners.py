"""The models the benchmark runs: the no-op fake, MiniLM and SmolLM2, loaded like the worker does
(`models.loading.load_runner`) with the batch size the measurement needs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from models.base import ModelInput, ModelOutput, ModelRunner, Task
from models.loading import load_runner
from models.registry import load_registry

NOOP = "noop"
MINILM = "minilm"
SMOLLM = "smollm2"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / ".streamserve" / "models"  # converted GGUF models, shared with the worker


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

