"""A deterministic stand-in runner for service tests: no torch, instant, observable.

- embed: a unit vector derived from the text's sha256; classify: the first candidate label.
- generate: echoes the prompt's words (whitespace tokens), honouring max_new_tokens and stop.
- any input containing `RAISE_MARKER` makes the whole batch raise RuntimeError; one containing
  `HANG_MARKER` makes the call block (as a wedged device would) until the runner is closed.
- `fake_fail` in the spec: "always" fails every batch, "transient:N" raises a transient error on
  the first N batches; `fake_fail_while = <path>` fails every batch while that file exists.
- `computed_items` counts inputs actually computed (tests assert expired ones never were).
- `FakeStreamingGenerator`: the same echo, streamed one word per event (a `StreamingGenerator`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from models.base import TASKS, ModelInput, ModelOutput, Task, TokenEvent
from models.errors import InvalidModelInput, TransientModelError
from models.finish import first_stop
from models.registry import ModelSpec
from models.stream_wait import collect
from models.token_stream import RequestTable, StreamRequest, TextStream

RAISE_MARKER = "__raise__"
HANG_MARKER = "__hang__"
_FAKE_EOS = -1


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
        return len(_prompt(item).split())

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
        if any(HANG_MARKER in _prompt(item) for item in batch):
            self._closed_event.wait()
            raise RuntimeError(f"fake model {self.name}: closed while hung")
        if any(RAISE_MARKER in _prompt(item) for item in batch):
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
            vector = fake_embedding(_prompt(item), self._dim)
            return ModelOutput(embedding=vector, tokens_in=tokens_in)
        if task == "classify":
            labels = item.labels or self._labels
            if not labels:
                raise InvalidModelInput(f"request {item.request_id}: classify needs labels")
            return ModelOutput(label=labels[0], score=1.0, tokens_in=tokens_in)
        return self._generate(item, tokens_in)

    def _generate(self, item: ModelInput, tokens_in: int) -> ModelOutput:
        limit = min(item.parameters.max_new_tokens, self.max_new_tokens)
        words = _prompt(item).split()
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


def _prompt(item: ModelInput) -> str:
    if item.messages:
        return " ".join(m.content for m in item.messages)
    return item.text or ""


class FakeStreamingGenerator(FakeRunner):
    """A `StreamingGenerator` stand-in (kind = "fake", engine = "continuous"): every step, after
    `token_delay_s` (default: the spec's fake_delay_s), each of the first max_batch_size
    unfinished requests gets its next prompt word as one event, from the fake's own thread.
    Honours max_new_tokens, stop strings and cancel like the real engine; a prompt containing
    `RAISE_MARKER` ends with an error event. embed/classify run as in `FakeRunner`."""

    def __init__(self, spec: ModelSpec, token_delay_s: float | None = None) -> None:
        super().__init__(spec)
        self.token_delay_s = spec.fake_delay_s if token_delay_s is None else token_delay_s
        self._requests = RequestTable()
        self._plans: dict[str, tuple[int, bool]] = {}  # key -> (prompt words, must fail)
        self._steps: dict[str, int] = {}  # key -> words produced so far (own thread only)
        self._keys = itertools.count()
        self._commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"fake-{spec.key}", daemon=True)
        self._thread.start()

    def submit(self, item: ModelInput, on_event: Callable[[TokenEvent], None]) -> None:
        if "generate" not in self.tasks or self.closed:
            raise InvalidModelInput(f"model {self.name} cannot generate now")
        words = _prompt(item).split()
        limit = min(item.parameters.max_new_tokens, self.max_new_tokens)
        stream = TextStream(
            lambda tokens: " ".join(words[t] for t in tokens),
            eos_ids=(_FAKE_EOS,),
            limit=limit,
            stops=item.parameters.stop,
        )
        request = StreamRequest(item.request_id, on_event, stream, self.count_tokens(item))
        key = f"{item.request_id}#{next(self._keys)}"
        self._plans[key] = (len(words), RAISE_MARKER in _prompt(item))
        self._requests.add(key, request)

    def cancel(self, request_id: str) -> None:
        for key in self._requests.keys_for(request_id):
            self._commands.put(("cancel", key))

    def active(self) -> int:
        return len(self._requests)

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if task != "generate" or task not in self.tasks:
            return super().run(task, batch)
        return collect(self.submit, batch)

    def close(self) -> None:
        self._commands.put(("close", ""))
        self._thread.join(timeout=10)
        super().close()

    def _loop(self) -> None:
        while self._apply_commands():
            running = self._requests.snapshot()[: self.max_batch_size]
            time.sleep(self.token_delay_s if running else 0.005)
            for key, request in running:
                self._step(key, request)
        for _key, request in self._requests.take_all():
            request.fail("model closed")

    def _apply_commands(self) -> bool:
        while not self._commands.empty():
            command, key = self._commands.get()
            if command == "close":
                return False
            if self._requests.get(key) is not None:
                request = self._end(key)
                request.finish(request.stream.close("cancelled"))
        return True

    def _step(self, key: str, request: StreamRequest) -> None:
        words, fails = self._plans[key]
        steps = self._steps.get(key, 0) + 1
        if steps == 1:
            with self._lock:
                self.computed_items += 1
        self._steps[key] = steps
        if fails:
            self._end(key).fail(f"fake model {self.name}: request contains {RAISE_MARKER}")
            return
        # Word i is "token" i; after the last word comes EOS, as a real model stops.
        tokens = list(range(min(steps, words))) + ([_FAKE_EOS] if steps > words else [])
        delta = request.stream.update(tokens)
        if request.stream.finished:
            self._end(key).finish(delta)
        else:
            request.progress(delta)

    def _end(self, key: str) -> StreamRequest:
        self._steps.pop(key, None)
        self._plans.pop(key, None)
        request = self._requests.pop(key)
        assert request is not None  # only this thread removes requests
        return request
