"""`FakeStreamingGenerator`: the fake echo model as a `StreamingGenerator` (kind = "fake",
engine = "continuous"), streamed one word per event from its own thread, for service tests."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence

from models.base import ModelInput, ModelOutput, Task, TokenEvent
from models.errors import InvalidModelInput
from models.fake import FAKE_EOS, RAISE_MARKER, FakeRunner, prompt_of
from models.registry import ModelSpec
from models.stream_wait import collect
from models.token_stream import RequestTable, StreamRequest, TextStream


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
        words = prompt_of(item).split()
        limit = min(item.parameters.max_new_tokens, self.max_new_tokens)
        stream = TextStream(
            lambda tokens: " ".join(words[t] for t in tokens),
            eos_ids=(FAKE_EOS,),
            limit=limit,
            stops=item.parameters.stop,
        )
        request = StreamRequest(item.request_id, on_event, stream, self.count_tokens(item))
        key = f"{item.request_id}#{next(self._keys)}"
        self._plans[key] = (len(words), RAISE_MARKER in prompt_of(item))
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
        tokens = list(range(min(steps, words))) + ([FAKE_EOS] if steps > words else [])
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
