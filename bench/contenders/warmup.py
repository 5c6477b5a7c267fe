"""Loading and warming the contender's model before it reports ready."""

from __future__ import annotations

import logging
from pathlib import Path

from bench.contenders.config import ContenderConfig
from bench.runners import SMOLLM, load_model, task_of
from bench.workloads import embed_inputs, embed_texts, generate_inputs, story_prompts
from models.base import ModelRunner


def quiet_logging() -> None:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def loaded_and_warm(config: ContenderConfig, batch_size: int | None = None) -> ModelRunner:
    size = batch_size or config.batch_size
    runner = load_model(config.model, size, config.torch_threads, Path(config.cache_dir))
    if config.model == SMOLLM:  # one short generation: allocations and kernels for B
        batch, rounds = generate_inputs(story_prompts(size), 4), 1
    else:
        batch, rounds = embed_inputs(embed_texts(None, size)), 2
    for _ in range(rounds):
        runner.run(task_of(config.model), batch)
    return runner
