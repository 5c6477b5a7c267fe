"""Continuous-batching generation with token streaming: one long-lived engine per generative model.

transformers' manager (see `models.paged`) schedules at the iteration level: a request joins the
running batch at the next forward step and leaves when it is done, so short answers are not held
hostage by long ones. This module adds what a service needs around it:
- one dispatcher thread reads every manager output and calls the request's `on_event` (so events
  of a request are in order, and callbacks never run on the manager's compute thread);
- cumulative token lists become text deltas (`TextStream`): stop strings, EOS, per-request limits;
- cancellation (the manager sends nothing for a cancelled request, so we finish it ourselves);
- a dead manager is replaced and the requests it held get an error event.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from models import hf
from models.base import ModelInput, ModelOutput, Task, TokenEvent
from models.errors import InvalidModelInput
from models.paged import RowSamplingProcessor, new_manager, plan_cache
from models.prompting import PromptCodec, eos_ids
from models.registry import ModelSpec
from models.stream_wait import collect
from models.token_stream import TextStream

logger = logging.getLogger(__name__)

OnEvent = Callable[[TokenEvent], None]
_POLL_S = 0.02  # how long the dispatcher waits for output before looking at cancellations
_RESTART_PAUSE_S = 1.0


@dataclass
class _Request:
    request_id: str
    on_event: OnEvent
    stream: TextStream
    tokens_in: int


class ContinuousEngine:
    def __init__(self, spec: ModelSpec, model: Any, tokenizer: PreTrainedTokenizerBase) -> None:
        self.name, self.version = spec.name, spec.version
        self.tasks: tuple[Task, ...] = ("generate",)
        self.max_batch_size = spec.max_batch_size
        self.max_input_tokens = spec.max_input_tokens
        self.max_new_tokens = spec.max_new_tokens
        self._model: Any = model
        self._device = hf.resolve_device(spec.device)
        self._codec = PromptCodec(tokenizer, spec.max_input_tokens, spec.key)
        self._eos = sorted(eos_ids(model, tokenizer))
        self._plan = plan_cache(
            model.config,
            model.dtype,
            spec.max_batch_size,
            spec.max_input_tokens + spec.max_new_tokens,
        )
        self._sampler = RowSamplingProcessor()
        self._ids = itertools.count()
        self._lock = threading.Lock()  # guards _requests, _manager and _closed
        self._requests: dict[str, _Request] = {}  # by engine key (request ids may repeat)
        self._commands: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self._closed = False
        self._restarted_at = 0.0
        self._manager: Any = self._start_manager()
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"generate-{spec.key}", daemon=True
        )
        self._dispatcher.start()

    @classmethod
    def load(cls, spec: ModelSpec, path: Path) -> ContinuousEngine:
        from models.causal_lm import load_causal_lm

        return cls(spec, *load_causal_lm(spec, path))

    def count_tokens(self, item: ModelInput) -> int:
        return len(self._codec.encode(item))

    def active(self) -> int:
        with self._lock:
            return len(self._requests)

    def submit(self, item: ModelInput, on_event: OnEvent) -> None:
        prompt = self._codec.prompt_ids(item)  # raises InvalidModelInput before anything queues
        params = item.parameters
        limit = max(1, min(params.max_new_tokens, self.max_new_tokens))
        stream = TextStream(self._codec.decode, eos_ids=self._eos, limit=limit, stops=params.stop)
        key = f"{item.request_id}#{next(self._ids)}"
        with self._lock:
            if self._closed:
                raise RuntimeError(f"model {self.name} is closed")
            self._requests[key] = _Request(item.request_id, on_event, stream, len(prompt))
            self._sampler.register(key, params)
            added = self._manager.add_request(
                prompt, request_id=key, max_new_tokens=limit, streaming=True, eos_token_id=self._eos
            )
        if added is None:  # the manager is stopping or dead: the dispatcher replaces it
            self._commands.put(("fail", key, "the generation engine is restarting"))

    def cancel(self, request_id: str) -> None:
        with self._lock:
            keys = [k for k, r in self._requests.items() if r.request_id == request_id]
            for key in keys:
                self._manager.cancel_request(key)
        for key in keys:
            self._commands.put(("cancel", key, ""))

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        if task != "generate":
            raise InvalidModelInput(f"model {self.name} does not support task {task!r}")
        for item in batch:
            self._codec.encode(item)  # reject the whole batch before any of it is queued
        return collect(self.submit, batch)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._commands.put(("close", "", ""))
        if threading.current_thread() is not self._dispatcher:  # close() from a callback
            self._dispatcher.join(timeout=30)
        self._stop_manager(self._manager)
        self._model = None
        gc.collect()
        hf.release(self._device)

    # ---- the dispatcher thread ----

    def _dispatch(self) -> None:
        while self._apply_commands():
            manager = self._manager
            output = manager.get_result(timeout=_POLL_S)
            if output is not None:
                self._on_output(output)
            elif not _healthy(manager):
                self._restart("the generation engine stopped unexpectedly")
        with self._lock:
            failed = self._take_all()
        self._fail(failed, "model closed")

    def _apply_commands(self) -> bool:
        """Handle cancellations and failures; False once the engine closes."""
        while True:
            try:
                command, key, message = self._commands.get_nowait()
            except queue.Empty:
                return True
            if command == "close":
                return False
            request = self._pop(key)
            if request is None:
                continue  # already finished: it had its one finished event
            if command == "cancel":
                self._finish(key, request, request.stream.close("cancelled"))
            else:
                self._emit(request, TokenEvent(request.request_id, "", 0, True, error=message))
                if not _healthy(self._manager):
                    self._restart(message)

    def _on_output(self, output: Any) -> None:
        key = output.request_id
        with self._lock:
            request = self._requests.get(key)
        if request is None:
            return  # a late output of a cancelled or stop-string-finished request
        if output.error is not None:
            self._pop(key)
            error = f"generation failed: {output.error}"
            self._emit(request, TokenEvent(request.request_id, "", 0, True, error=error))
            return
        stream = request.stream
        delta = stream.update(output.generated_tokens)
        if output.is_finished() and not stream.finished:
            delta += stream.close("length")  # the manager's own limit (ours is the same)
        if not stream.finished:
            if delta:
                self._emit(request, TokenEvent(request.request_id, delta, stream.tokens_out))
            return
        self._pop(key)
        if not output.is_finished():  # a stop string: stop spending compute on it
            self._manager.cancel_request(key)
        self._finish(key, request, delta)

    def _finish(self, key: str, request: _Request, delta: str) -> None:
        stream = request.stream
        out = ModelOutput(
            text=stream.emitted,
            tokens_in=request.tokens_in,
            tokens_out=stream.tokens_out,
            finish_reason=stream.finish_reason,
        )
        self._emit(request, TokenEvent(request.request_id, delta, stream.tokens_out, True, out))

    def _pop(self, key: str) -> _Request | None:
        with self._lock:
            request = self._requests.pop(key, None)
        self._sampler.forget(key)
        return request

    def _emit(self, request: _Request, event: TokenEvent) -> None:
        try:
            request.on_event(event)
        except Exception:  # a broken callback must not stop every other request's stream
            logger.exception("on_event callback failed for request %s", request.request_id)

    def _restart(self, reason: str) -> None:
        if time.monotonic() - self._restarted_at < _RESTART_PAUSE_S:
            time.sleep(_RESTART_PAUSE_S)  # a manager that dies on start must not spin a core
        logger.warning("model %s: restarting the generation manager (%s)", self.name, reason)
        with self._lock:
            self._stop_manager(self._manager)
            self._manager = self._start_manager()
            failed = self._take_all()
        self._restarted_at = time.monotonic()
        self._fail(failed, reason)

    def _take_all(self) -> list[tuple[str, _Request]]:
        failed = list(self._requests.items())
        self._requests.clear()
        return failed

    def _fail(self, failed: list[tuple[str, _Request]], reason: str) -> None:
        for key, request in failed:
            self._sampler.forget(key)
            self._emit(request, TokenEvent(request.request_id, "", 0, True, error=reason))

    def _start_manager(self) -> Any:
        return new_manager(
            self._model,
            self._plan,
            self.max_batch_size,
            self._eos,
            self._codec.pad_id,
            self._sampler,
        )

    @staticmethod
    def _stop_manager(manager: Any) -> None:
        # A hard stop fails what it still holds (we drop those outputs: the requests are
        # failed or finished by then) and gives the model its own attention back.
        manager.stop(block=True, timeout=10, hard_stop=True)
        manager.destroy()


def _healthy(manager: Any) -> bool:
    status = manager.background_thread_status.can_accept_new_requests()
    return bool(manager.is_running()) and status is None
