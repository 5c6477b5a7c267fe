"""Sentence embeddings (mean pooling + L2) and zero-shot classification with an encoder."""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, PreTrainedTokenizerBase

from models import hf
from models.base import ModelInput, ModelOutput, Task
from models.errors import InvalidModelInput, ModelLoadError
from models.registry import ModelSpec
from models.thread_tokenizer import private_copy

_LABEL_CACHE_SIZE = 4096


class EncoderRunner:
    def __init__(self, spec: ModelSpec, model: Any, tokenizer: PreTrainedTokenizerBase):
        self.name, self.version = spec.name, spec.version
        self.tasks: tuple[Task, ...] = spec.tasks
        self.max_batch_size = spec.max_batch_size
        self.max_input_tokens = spec.max_input_tokens
        self.max_new_tokens = 0
        self._spec = spec
        # transformers' model classes are only partly typed; the runner's own API is.
        self._model: Any = model
        self._tokenizer = tokenizer  # the model thread's: it truncates and pads batches
        self._counter = private_copy(tokenizer)  # the event loop's: counts tokens at admission
        self._device = hf.model_device(model)  # the batch goes where the weights are
        # One batch at a time: the service may call from several threads, and interleaving
        # two forward passes on one model only makes both slower.
        self._lock = threading.Lock()
        # Requests tend to reuse the same label sets: embed each label once.
        self._labels: OrderedDict[str, torch.Tensor] = OrderedDict()

    @classmethod
    def load(cls, spec: ModelSpec, path: Path) -> EncoderRunner:
        where = hf.placement(spec)
        tokenizer = hf.load_tokenizer(path)
        try:
            dtype = hf.torch_dtype(where)
            model: Any = AutoModel.from_pretrained(path, dtype=dtype, **hf.SAFE_LOAD)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model {spec.key}: cannot load {path}: {exc}") from exc
        model.to(hf.torch_device(where))
        model.eval()
        return cls(spec, model, tokenizer)

    def count_tokens(self, item: ModelInput) -> int:
        """Tokens of the text with [CLS]/[SEP], before truncation to max_input_tokens."""
        ids: list[int] = self._counter(_text(item), verbose=False)["input_ids"]
        return len(ids)

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if task not in self.tasks:
            raise InvalidModelInput(f"model {self.name} does not support task {task!r}")
        texts = [_text(item) for item in batch]
        with self._lock:
            vectors, counts = self.embed(texts)
            if task == "embed":
                return [
                    ModelOutput(embedding=v.tolist(), tokens_in=n)
                    for v, n in zip(vectors, counts, strict=True)
                ]
            return [
                self._classify(item, vector, n)
                for item, vector, n in zip(batch, vectors, counts, strict=True)
            ]

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._labels.clear()
        gc.collect()
        hf.release(self._device)

    def embed(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """L2-normalised embeddings (float32, CPU) and the tokens each text used."""
        vectors: list[torch.Tensor] = []
        counts: list[int] = []
        for start in range(0, len(texts), self.max_batch_size):
            chunk, chunk_counts = self._embed_chunk(texts[start : start + self.max_batch_size])
            vectors.append(chunk)
            counts.extend(chunk_counts)
        return torch.cat(vectors), counts

    def _embed_chunk(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        if self._model is None:
            raise RuntimeError(f"model {self.name} is closed")
        encoded = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_input_tokens,
            return_tensors="pt",
        ).to(self._device)
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            normed = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1).cpu()
        counts: list[int] = encoded["attention_mask"].sum(dim=1).tolist()
        return normed, counts

    def _classify(self, item: ModelInput, vector: torch.Tensor, tokens_in: int) -> ModelOutput:
        labels = item.labels or self._spec.labels
        if not labels:
            raise InvalidModelInput(
                f"request {item.request_id}: classify needs labels and model {self.name} "
                "declares none"
            )
        label_vectors = self._label_vectors(labels)
        probs = torch.softmax(self._spec.classify_scale * (label_vectors @ vector), dim=0)
        best = int(torch.argmax(probs))
        return ModelOutput(label=labels[best], score=float(probs[best]), tokens_in=tokens_in)

    def _label_vectors(self, labels: Sequence[str]) -> torch.Tensor:
        missing = [label for label in dict.fromkeys(labels) if label not in self._labels]
        if missing:
            phrased = [self._spec.label_template.format(label) for label in missing]
            vectors, _ = self.embed(phrased)
            for label, vector in zip(missing, vectors, strict=True):
                self._labels[label] = vector
        for label in labels:
            self._labels.move_to_end(label)
        while len(self._labels) > _LABEL_CACHE_SIZE:
            self._labels.popitem(last=False)
        return torch.stack([self._labels[label] for label in labels])


def _text(item: ModelInput) -> str:
    if item.text is None:
        raise InvalidModelInput(f"request {item.request_id}: this task needs text")
    return item.text
