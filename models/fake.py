"""A deterministic stand-in runner for service tests: no torch, instant, observable.

- embed: a unit vector derived from the text's sha256; classify: the first candidate label.
- generate: echoes the prompt's words (whitespace tokens), honouring max_new_tokens and stop.
- any input containing `RAISE_MARKER` makes the whole batch raise RuntimeError; one containing
  `HANG_MARKER` makes the call block (as a wedged device would) until the runner is closed.
- `fake_fail` in the spec: "always" fails every batch, "transient:N" raises a transient error on
  the first N batches; `fake_fail_while = <path>` fails every batch while that file exists.
- `computed_items` counts inputs actually computed (tests assert expired ones never were).
- `models.fake_streaming.FakeStreamingGenerator`: the same echo, streamed one word per event.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.base import TASKS, ModelInput, ModelOutput, Task
from models.errors import InvalidModelInput, TransientModelError
from models.finish import first_stop
from models.registry import ModelSpec

RAISE_MARKER = "__raise__"
HANG_MARKER = "__hang__"
FAKE_EOS = -1


class FakeRunner:
    def __init__(self, spec: ModelSpec) -> None:
        self.name, self.version = spec.name, spec.version
        self.tasks: tuple[Task, ...] = spec.tasks
        self.max_batch_size = spec.max_batch_size
        self.max_input_tokens = spec.max_input_tokens
        self.max_new_tokens = spec.max_new_tokens
        self.delay_s = spec.fake_delay_s
        self._dim = spec.fake_embedding_dim
        self._labels = spec.labels
        self._lock = threading.Lock()
        self._fail = spec.fake_fail
        self._fail_while = Path(spec.fake_fail_while) if spec.fake_fail_while else None
        self._transient_left = int(self._fail.split(":")[1]) if self._fail.startswith(
            "transient:") else 0
        self._closed_event = threading.Event()
        self.computed_items = 0
        self.calls = 0  # every call of run(), failed ones included
        self.batches: list[tuple[Task, int]] = []  # (task, size) of every batch run
        self.closed = False

    def count_tokens(self, item: ModelInput) -> int:
        return len(prompt_of(item).split())

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if task not in self.tasks:
            raise InvalidModelInput(f"model {self.name} does not support task {task!r}")
        with self._lock:
            self.calls += 1
        self._maybe_fail(batch)
        if self.delay_s:
            time.sleep(self.delay_s)
        outputs = [self._one(task, item) for item in batch]
        with self._lock:  # the service may run batches from several threads
            self.computed_items += len(batch)
            self.batches.append((task, len(batch)))
        return outputs

    def close(self) -> None:
        self.closed = True
        self._closed_event.set()  # releases a call blocked on HANG_MARKER

    def _maybe_fail(self, batch: Sequence[ModelInput]) -> None:
        if any(HANG_MARKER in prompt_of(item) for item in batch):
            self._closed_event.wait()
            raise RuntimeError(f"fake model {self.name}: closed while hung")
        if any(RAISE_MARKER in prompt_of(item) for item in batch):
            raise RuntimeError(f"fake model {self.name}: batch contains {RAISE_MARKER}")
        if self._fail == "always" or (self._fail_while is not None and self._fail_while.exists()):
            raise RuntimeError(f"fake model {self.name}: weights are broken")
        with self._lock:
            transient, self._transient_left = self._transient_left > 0, max(
                0, self._transient_left - 1)
        if transient:
            raise TransientModelError(f"fake model {self.name}: device busy, try again")

    def _one(self, task: Task, item: ModelInput) -> ModelOutput:
        tokens_in = self.count_tokens(item)
        if task == "embed":
            vector = fake_embedding(prompt_of(item), self._dim)
            return ModelOutput(embedding=vector, tokens_in=tokens_in)
        if task == "classify":
            labels = item.labels or self._labels
            if not labels:
                raise InvalidModelInput(f"request {item.request_id}: classify needs labels")
            return ModelOutput(label=labels[0], score=1.0, tokens_in=tokens_in)
        return self._generate(item, tokens_in)

    def _generate(self, item: ModelInput, tokens_in: int) -> ModelOutput:
        limit = min(item.parameters.max_new_tokens, self.max_new_tokens)
        words = prompt_of(item).split()
        reason = "length" if len(words) > limit else "stop"
        text = " ".join(words[:limit])
        cut = first_stop(text, item.parameters.stop)
        if cut is not None:
            text, reason = text[:cut], "stop"
        tokens_out = len(text.split())
        return ModelOutput(
            text=text, tokens_in=tokens_in, tokens_out=tokens_out, finish_reason=reason
        )


def fake_embedding(text: str, dim: int) -> list[float]:
    """A unit vector that depends only on `text`."""
    raw = b""
    counter = 0
    while len(raw) < dim:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [b / 127.5 - 1.0 for b in raw[:dim]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def fake_spec(
    name: str = "fake",
    version: str = "1",
    tasks: Sequence[Task] = TASKS,
    **overrides: Any,
) -> ModelSpec:
    """A registry entry for a fake runner, for tests that build a `Registry` in code."""
    spec = ModelSpec(
        name=name,
        version=version,
        tasks=tuple(tasks),
        kind="fake",
        source=None,
        max_batch_size=8,
        max_input_tokens=512,
        max_new_tokens=64,
        default=True,
    )
    return dataclasses.replace(spec, **overrides)


def prompt_of(item: ModelInput) -> str:
    """The text a fake model works on: the prompt, or the chat messages joined."""
    if item.messages:
        return " ".join(m.content for m in item.messages)
    return item.text or ""
