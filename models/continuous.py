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
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from models import hf
from models.base import ModelInput, ModelOutput, Task, TokenEvent
from models.errors import InvalidModelInput
from models.paged import RowSamplingProcessor, healthy, new_manager, plan_cache, stop
from models.prompting import PromptCodec, eos_ids
from models.registry import ModelSpec
from models.stream_wait import collect
from models.thread_tokenizer import private_copy
from models.token_stream import RequestTable, StreamRequest, TextStream

logger = logging.getLogger(__name__)

_POLL_S = 0.02  # how long the dispatcher waits for output before looking at its commands
_RESTART_PAUSE_S = 1.0


class ContinuousEngine:
    def __init__(self, spec: ModelSpec, model: Any, tokenizer: PreTrainedTokenizerBase) -> None:
        self.name, self.version = spec.name, spec.version
        self.tasks: tuple[Task, ...] = ("generate",)
        self.max_batch_size = spec.max_batch_size
        self.max_input_tokens = spec.max_input_tokens
        self.max_new_tokens = spec.max_new_tokens
        self._model: Any = model
        self._device = hf.model_device(model)
        # Prompts are encoded on the event loop (count_tokens, submit); text is decoded on the
        # dispatcher thread: each thread has a tokenizer of its own.
        self._codec = PromptCodec(tokenizer, spec.max_input_tokens, spec.key)
        self._decoder = PromptCodec(private_copy(tokenizer), spec.max_input_tokens, spec.key)
        self._eos = sorted(eos_ids(model, tokenizer))
        longest = spec.max_input_tokens + spec.max_new_tokens
        self._plan = plan_cache(model.config, model.dtype, spec.max_batch_size, longest)
        self._sampler = RowSamplingProcessor()
        self._keys = itertools.count()
        self._requests = RequestTable()
        # Commands for the dispatcher: ("cancel" | "retry" | "close", key).
        self._commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._lock = threading.Lock()  # submit vs. replacing the manager vs. close
        self._refused: dict[str, tuple[list[int], int]] = {}  # key -> (prompt, limit)
        self._closed = False
        self._restarted_at = 0.0
        self._manager: Any = self._start_manager()
        self._dispatcher = threading.Thread(target=self._dispatch, name=spec.key, daemon=True)
        self._dispatcher.start()

    @classmethod
    def load(cls, spec: ModelSpec, path: Path) -> ContinuousEngine:
        from models.causal_lm import load_causal_lm

        return cls(spec, *load_causal_lm(spec, path))

    def count_tokens(self, item: ModelInput) -> int:
        return len(self._codec.encode(item))

    def active(self) -> int:
        return len(self._requests)

    def submit(self, item: ModelInput, on_event: Callable[[TokenEvent], None]) -> None:
        prompt = self._codec.prompt_ids(item)  # raises InvalidModelInput before anything queues
        params = item.parameters
        limit = max(1, min(params.max_new_tokens, self.max_new_tokens))
        stream = TextStream(self._decoder.decode, eos_ids=self._eos, limit=limit, stops=params.stop)
        key = f"{item.request_id}#{next(self._keys)}"
        with self._lock:
            if self._closed:
                raise RuntimeError(f"model {self.name} is closed")
            self._requests.add(key, StreamRequest(item.request_id, on_event, stream, len(prompt)))
            self._sampler.register(key, params)
            if self._add(key, prompt, limit):
                return
            # The manager is stopping or dead. The request never reached it, so it need not
            # fail: the dispatcher replaces the manager and hands it the request.
            self._refused[key] = (prompt, limit)
        self._commands.put(("retry", key))

    def cancel(self, request_id: str) -> None:
        keys = self._requests.keys_for(request_id)
        with self._lock:
            for key in keys:
                self._manager.cancel_request(key)
        for key in keys:
            self._commands.put(("cancel", key))

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
        self._commands.put(("close", ""))
        if threading.current_thread() is not self._dispatcher:  # close() from a callback
            self._dispatcher.join(timeout=30)
        stop(self._manager)
        self._model = None
        gc.collect()
        hf.release(self._device)

    # ---- everything below runs on the dispatcher thread ----

    def _dispatch(self) -> None:
        while True:
            try:
                if not self._dispatch_once():
                    break
            except Exception:  # this thread must outlive any bug: requests wait on it
                logger.exception("model %s: generation dispatcher failed", self.name)
                self._restart("internal error in the generation engine")
        self._fail(self._requests.take_all(), "model closed")

    def _dispatch_once(self) -> bool:
        if not self._apply_commands():
            return False
        manager = self._manager
        output = manager.get_result(timeout=_POLL_S)
        if output is not None:
            self._on_output(output)
        elif not healthy(manager):
            self._restart("the generation engine stopped unexpectedly")
        return True

    def _apply_commands(self) -> bool:
        """Handle cancellations and refused submissions; False once the engine closes."""
        while True:
            try:
                command, key = self._commands.get_nowait()
            except queue.Empty:
                return True
            if command == "close":
                return False
            if command == "retry" and key in self._refused:  # no restart since it was refused
                self._restart("the generation manager refused a request")
            elif command == "cancel" and (request := self._pop(key)) is not None:
                request.finish(request.stream.close("cancelled"))

    def _on_output(self, output: Any) -> None:
        key = output.request_id
        request = self._requests.get(key)
        if request is None:
            return  # a late output of a request we already finished (cancel, stop string)
        if output.error is not None:
            self._pop(key)
            request.fail(f"generation failed: {output.error}")
            return
        stream = request.stream
        delta = stream.update(output.generated_tokens)
        if output.is_finished() and not stream.finished:
            delta += stream.close("length")  # the manager's own limit (ours is the same)
        if not stream.finished:
            request.progress(delta)
            return
        self._pop(key)
        if not output.is_finished():  # a stop string: stop spending compute on it
            self._manager.cancel_request(key)
        request.finish(delta)

    def _pop(self, key: str) -> StreamRequest | None:
        self._sampler.forget(key)
        with self._lock:
            self._refused.pop(key, None)
        return self._requests.pop(key)

    def _add(self, key: str, prompt: list[int], limit: int) -> bool:
        added = self._manager.add_request(
            prompt, request_id=key, max_new_tokens=limit, streaming=True, eos_token_id=self._eos
        )
        return added is not None

    def _restart(self, reason: str) -> None:
        if time.monotonic() - self._restarted_at < _RESTART_PAUSE_S:
            time.sleep(_RESTART_PAUSE_S)  # a manager that dies on start must not spin a core
        logger.warning("model %s: restarting the generation manager (%s)", self.name, reason)
        with self._lock:
            # Old one first: stopping it gives the model its own attention back, which must
            # happen before the new manager switches the model to paged attention again.
            stop(self._manager)
            self._manager = self._start_manager()
            failed = []  # what the old manager held is lost; what it refused goes to the new one
            for key, request in self._requests.take_all():
                prompt, limit = self._refused.pop(key, ([], 0))
                if prompt and self._add(key, prompt, limit):
                    self._requests.add(key, request)
                else:
                    failed.append((key, request))
        self._restarted_at = time.monotonic()
        self._fail(failed, reason, transient=True)  # the new manager may well compute them

    def _fail(self, failed: list[tuple[str, StreamRequest]], reason: str,
              transient: bool = False) -> None:
        for key, request in failed:
            self._sampler.forget(key)
            request.fail(reason, transient)

    def _start_manager(self) -> Any:
        return new_manager(
            self._model,
            self._plan,
            self.max_batch_size,
            self._eos,
            self._codec.pad_id,
            self._sampler,
        )
