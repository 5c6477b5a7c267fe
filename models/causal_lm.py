"""Batched text generation with a causal LM (SmolLM2 and other chat models)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
    StoppingCriteriaList,
)

from models import hf
from models.base import GenerationParameters, ModelInput, ModelOutput, Task
from models.errors import InvalidModelInput, ModelLoadError
from models.finish import finish_sequence
from models.prompting import PromptCodec, eos_ids
from models.registry import ModelSpec
from models.sampling import RowSampler, RowStop
from models.thread_tokenizer import private_copy


class CausalLMRunner:
    def __init__(self, spec: ModelSpec, model: Any, tokenizer: PreTrainedTokenizerBase):
        self.name, self.version = spec.name, spec.version
        self.tasks: tuple[Task, ...] = ("generate",)
        self.max_batch_size = spec.max_batch_size
        self.max_input_tokens = spec.max_input_tokens
        self.max_new_tokens = spec.max_new_tokens
        # transformers' model classes are only partly typed; the runner's own API is.
        self._model: Any = model
        self._tokenizer = tokenizer
        self._device = hf.model_device(model)  # the batch goes where the weights are
        # One batch at a time: the service may call from several threads, and interleaving
        # two forward passes on one model only makes both slower.
        self._lock = threading.Lock()
        self._codec = PromptCodec(tokenizer, spec.max_input_tokens, spec.key)  # model thread
        # The event loop counts prompt tokens with a tokenizer of its own.
        self._counter = PromptCodec(private_copy(tokenizer), spec.max_input_tokens, spec.key)
        self._pad_id = self._codec.pad_id
        self._eos_ids = eos_ids(model, tokenizer)

    @classmethod
    def load(cls, spec: ModelSpec, path: Path) -> CausalLMRunner:
        model, tokenizer = load_causal_lm(spec, path)
        return cls(spec, model, tokenizer)

    def count_tokens(self, item: ModelInput) -> int:
        """Prompt tokens before any truncation, so the service can reject oversize prompts."""
        return len(self._counter.encode(item))

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if task != "generate":
            raise InvalidModelInput(f"model {self.name} does not support task {task!r}")
        outputs: list[ModelOutput] = []
        with self._lock:
            for start in range(0, len(batch), self.max_batch_size):
                outputs.extend(self._generate(batch[start : start + self.max_batch_size]))
        return outputs

    def close(self) -> None:
        with self._lock:
            self._model = None
        gc.collect()
        hf.release(self._device)

    def _generate(self, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if self._model is None:
            raise RuntimeError(f"model {self.name} is closed")
        prompts = [self._codec.prompt_ids(item) for item in batch]
        params = [item.parameters for item in batch]
        limits = [max(1, min(p.max_new_tokens, self.max_new_tokens)) for p in params]
        input_ids, attention = self._left_pad(prompts)
        width = input_ids.shape[1]
        config = GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=max(limits),
            do_sample=False,  # RowSampler does the sampling per row
            pad_token_id=self._pad_id,
            eos_token_id=sorted(self._eos_ids),
        )
        processors = LogitsProcessorList([RowSampler(params)] if RowSampler.needed(params) else [])
        stopper = RowStop(width, limits, [p.stop for p in params], self._decode)
        with torch.inference_mode():
            sequences = self._model.generate(
                input_ids=input_ids.to(self._device),
                attention_mask=attention.to(self._device),
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        rows: list[list[int]] = sequences[:, width:].tolist()
        return [
            self._output(row, prompt, p, limit)
            for row, prompt, p, limit in zip(rows, prompts, params, limits, strict=True)
        ]

    def _output(
        self, row: list[int], prompt: list[int], params: GenerationParameters, limit: int
    ) -> ModelOutput:
        done = finish_sequence(
            row, eos_ids=self._eos_ids, max_new_tokens=limit, stops=params.stop, decode=self._decode
        )
        return ModelOutput(
            text=done.text,
            tokens_in=len(prompt),
            tokens_out=done.tokens_out,
            finish_reason=done.finish_reason,
        )

    def _left_pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # Left padding keeps every prompt's last token in the final column, where generate
        # appends; the attention mask hides the pads.
        width = max(len(p) for p in prompts)
        ids = [[self._pad_id] * (width - len(p)) + p for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)

    def _decode(self, tokens: Sequence[int]) -> str:
        return self._codec.decode(tokens)


def load_causal_lm(spec: ModelSpec, path: Path) -> tuple[Any, PreTrainedTokenizerBase]:
    """The model (on its device, in eval mode) and tokenizer of a causal-LM registry entry."""
    where = hf.placement(spec)
    tokenizer = hf.load_tokenizer(path)
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(
            path, dtype=hf.torch_dtype(where), **hf.SAFE_LOAD
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model {spec.key}: cannot load {path}: {exc}") from exc
    model.to(hf.torch_device(where))
    model.eval()
    return model, tokenizer
