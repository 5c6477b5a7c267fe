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
from models.registry import ModelSpec
from models.sampling import RowSampler, RowStop


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
        self._device = hf.resolve_device(spec.device)
        # One batch at a time: the service may call from several threads, and interleaving
        # two forward passes on one model only makes both slower.
        self._lock = threading.Lock()
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise ModelLoadError(f"model {spec.key}: the tokenizer has no pad or EOS token")
            tokenizer.pad_token = tokenizer.eos_token  # pads are masked out; any id will do
        self._pad_id: int = tokenizer.pad_token_id
        # An empty prompt still needs one token to condition on.
        starts = (tokenizer.bos_token_id, tokenizer.eos_token_id, self._pad_id)
        self._start_id: int = next(i for i in starts if i is not None)
        self._eos_ids = _eos_ids(model, tokenizer)

    @classmethod
    def load(cls, spec: ModelSpec, path: Path) -> CausalLMRunner:
        device = hf.resolve_device(spec.device)
        tokenizer = hf.load_tokenizer(path)
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(
                path, dtype=hf.torch_dtype(spec.dtype), **hf.SAFE_LOAD
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model {spec.key}: cannot load {path}: {exc}") from exc
        model.to(device)
        model.eval()
        return cls(spec, model, tokenizer)

    def count_tokens(self, item: ModelInput) -> int:
        """Prompt tokens before any truncation, so the service can reject oversize prompts."""
        return len(self._encode(item))

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

    def _encode(self, item: ModelInput) -> list[int]:
        if item.messages:
            messages = [{"role": m.role, "content": m.content} for m in item.messages]
            prompt = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            # The template already wrote the special tokens (BOS, role markers) itself.
            ids: list[int] = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
            return ids
        if item.text is None:
            raise InvalidModelInput(f"request {item.request_id}: generate needs text or messages")
        plain: list[int] = self._tokenizer(item.text)["input_ids"]
        return plain

    def _generate(self, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if self._model is None:
            raise RuntimeError(f"model {self.name} is closed")
        # Keep the end of an oversize prompt: that is where the generation prompt is.
        prompts = [self._encode(item)[-self.max_input_tokens :] for item in batch]
        prompts = [p or [self._start_id] for p in prompts]
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
        # No clean-up pass: it strips spaces before punctuation, which corrupts BPE output.
        text = self._tokenizer.decode(
            list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)


def _eos_ids(model: Any, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(i for i in configured if isinstance(i, int))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
