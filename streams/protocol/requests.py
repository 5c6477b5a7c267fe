"""A decoded InferenceRequest becomes a validated `WorkItem`, or an `InvalidRequest`.

Rules, each with the `InvalidRequest.code` it raises:
- `invalid_request_id`: request_id is empty/blank or longer than 128 characters.
- `unknown_task`: task is not generate|embed|classify, or the model does not serve it.
- `unknown_model`: no such model/version is served (the lookup is the worker's: `unknown_model()`).
- `invalid_input`: input of the wrong shape: both `text` and `messages`; `messages` for embed or
  classify; a chat role other than system|user|assistant; classify with no labels in the request
  and none in the model's registry entry.
- `empty_input`: no text and no messages, or only whitespace.
- `input_too_long`: more input tokens than the model's max_input_tokens (`count_input_tokens`).
- `invalid_parameters`, checked for generate only (other tasks ignore `parameters`):
  max_new_tokens 1..the model's cap (default min(64, cap)); temperature 0..2 (default 0 = greedy);
  top_p in (0, 1] (default 1); stop at most 4 strings of 1..64 characters; seed >= 0.
  For classify: at most 32 labels, each 1..128 characters, no duplicates.
- `request_too_large`, `input_too_long` (characters), `invalid_input` (too many chat messages),
  `invalid_parameters` (priority, deadline, attributes): the model's cheap caps
  (`models.limits.RequestLimits`, per model in the registry), checked before any tokenizer
  work: priority in [-max_priority, max_priority]; a deadline not before `created_at` and at
  most `max_deadline_s` after it; at most `max_attributes` attributes of `max_attribute_chars`.
Fields a task does not use (labels outside classify, stream outside generate) are ignored.
A passed deadline is not an error: the worker answers `expired` without computing
(`WorkItem.is_expired`, the same rule the batcher applies while items wait).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from models.base import TASKS, ChatMessage, GenerationParameters, ModelInput, ModelRunner, Task
from models.limits import RequestLimits
from streams.errors import InvalidRequest
from streams.protocol.header import RequestHeader

MAX_REQUEST_ID_CHARS = 128
DEFAULT_MAX_NEW_TOKENS = 64
MAX_TEMPERATURE = 2.0
CHAT_ROLES = frozenset({"system", "user", "assistant"})
_UNUSED_PARAMETERS = GenerationParameters()  # frozen, so one shared instance is safe (and cheaper)


@dataclass(frozen=True)
class ModelLimits:
    """What validation needs to know about the model a request names."""

    tasks: tuple[Task, ...]
    max_new_tokens: int
    max_input_tokens: int
    labels: tuple[str, ...] = ()  # registry default labels for classify
    caps: RequestLimits = field(default_factory=RequestLimits)

    @classmethod
    def of(cls, runner: ModelRunner, labels: Sequence[str] = (),
           caps: RequestLimits | None = None) -> ModelLimits:
        return cls(runner.tasks, runner.max_new_tokens, runner.max_input_tokens, tuple(labels),
                   caps or RequestLimits())

    @property
    def max_input_chars(self) -> int:
        return self.caps.input_chars(self.max_input_tokens)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """A valid request, ready for the batcher and then the model runner."""

    header: RequestHeader
    task: Task
    input: ModelInput
    priority: int = 0
    deadline_ms: int | None = None
    stream: bool = False

    @property
    def request_id(self) -> str:
        return self.header.request_id

    def is_expired(self, now_ms: float) -> bool:
        return deadline_passed(self.deadline_ms, now_ms)


def deadline_passed(deadline_ms: int | None, now_ms: float) -> bool:
    """At the deadline itself the answer is already useless, hence >=."""
    return deadline_ms is not None and now_ms >= deadline_ms


def unknown_model(model: str, version: str | None) -> InvalidRequest:
    shown = model if version is None else f"{model} version {version}"
    return InvalidRequest("unknown_model", f"model {shown!r} is not served here")


def validate_request(
    record: Mapping[str, Any], limits: ModelLimits, received_at_ms: float
) -> WorkItem:
    """The work item for a decoded request, or InvalidRequest naming the first broken rule."""
    header = RequestHeader.of(record, received_at_ms)
    rid = header.request_id
    if not rid.strip() or len(rid) > MAX_REQUEST_ID_CHARS:
        raise InvalidRequest(
            "invalid_request_id", f"request_id must be 1..{MAX_REQUEST_ID_CHARS} characters"
        )
    task = record.get("task")
    if task not in TASKS:
        raise InvalidRequest("unknown_task", f"unknown task {task!r}; expected one of {TASKS}")
    if task not in limits.tasks:
        raise InvalidRequest("unknown_task", f"model {header.model!r} does not serve {task}")
    caps = limits.caps
    _check_attributes(header.attributes, caps)
    priority = int(record.get("priority", 0))
    if abs(priority) > caps.max_priority:
        raise InvalidRequest("invalid_parameters",
                             f"priority must be in [-{caps.max_priority}, {caps.max_priority}]")
    deadline = record.get("deadline")
    _check_deadline(deadline, header.created_at_ms, caps)
    text, messages = _input(task, record.get("text"), record.get("messages") or [], limits)
    labels = _labels(record.get("labels") or [], limits) if task == "classify" else ()
    params = (
        _parameters(record.get("parameters") or {}, limits.max_new_tokens, caps)
        if task == "generate"
        else _UNUSED_PARAMETERS
    )
    model_input = ModelInput(rid, text, messages, labels, params)
    return WorkItem(
        header=header,
        task=task,
        input=model_input,
        priority=priority,
        deadline_ms=deadline,
        stream=bool(record.get("stream")) and task == "generate",
    )


def check_request_size(size_bytes: int, caps: RequestLimits) -> None:
    """The encoded request (key included) against the model's byte cap."""
    if size_bytes > caps.max_request_bytes:
        raise InvalidRequest("request_too_large", f"request is {size_bytes} bytes; this model "
                             f"takes at most {caps.max_request_bytes}")


def _check_attributes(attributes: Mapping[str, str], caps: RequestLimits) -> None:
    if len(attributes) > caps.max_attributes:
        raise InvalidRequest("invalid_parameters", f"at most {caps.max_attributes} attributes")
    longest = caps.max_attribute_chars
    if any(len(k) > longest or len(v) > longest for k, v in attributes.items()):
        raise InvalidRequest("invalid_parameters",
                             f"attribute keys and values must be at most {longest} characters")


def _check_deadline(deadline: int | None, created_at_ms: int, caps: RequestLimits) -> None:
    if deadline is None:
        return
    if deadline < created_at_ms:
        raise InvalidRequest("invalid_parameters", "deadline is before created_at")
    if deadline - created_at_ms > caps.max_deadline_s * 1000:
        raise InvalidRequest("invalid_parameters", f"deadline is more than "
                             f"{caps.max_deadline_s:.0f}s after created_at")


def count_input_tokens(
    item: ModelInput, count_tokens: Callable[[ModelInput], int], max_input_tokens: int
) -> int:
    """Input tokens of `item` (the batcher's budget unit); input_too_long above the model's max."""
    tokens = count_tokens(item)
    if tokens > max_input_tokens:
        message = f"input is {tokens} tokens; the model takes at most {max_input_tokens}"
        raise InvalidRequest("input_too_long", message)
    return tokens


def _input(
    task: Task, text: str | None, raw_messages: Sequence[Mapping[str, Any]], limits: ModelLimits
) -> tuple[str | None, tuple[ChatMessage, ...]]:
    if text is not None and raw_messages:
        raise InvalidRequest("invalid_input", "set either text or messages, not both")
    if raw_messages and task != "generate":
        raise InvalidRequest("invalid_input", f"{task} takes text, not chat messages")
    if len(raw_messages) > limits.caps.max_messages:
        raise InvalidRequest("invalid_input", f"at most {limits.caps.max_messages} chat messages")
    chars = len(text or "") + sum(len(str(m["content"])) for m in raw_messages)
    if chars > limits.max_input_chars:
        raise InvalidRequest("input_too_long", f"input is {chars} characters; the model takes "
                             f"at most {limits.max_input_chars}")
    messages = tuple(ChatMessage(str(m["role"]), str(m["content"])) for m in raw_messages)
    for message in messages:
        if message.role not in CHAT_ROLES:
            raise InvalidRequest(
                "invalid_input", f"chat role {message.role!r} is not one of {sorted(CHAT_ROLES)}"
            )
    if not (text or "").strip() and not any(m.content.strip() for m in messages):
        raise InvalidRequest("empty_input", "the request has no input text")
    return text, messages


def _labels(raw: Sequence[str], limits: ModelLimits) -> tuple[str, ...]:
    labels = tuple(raw) or limits.labels
    if not labels:
        raise InvalidRequest("invalid_input", "classify needs labels; the model has no defaults")
    caps = limits.caps
    if len(labels) > caps.max_labels:
        raise InvalidRequest("invalid_parameters", f"at most {caps.max_labels} labels")
    if any(not label.strip() or len(label) > caps.max_label_chars for label in labels):
        raise InvalidRequest("invalid_parameters",
                             f"labels must be 1..{caps.max_label_chars} chars")
    if len(set(labels)) != len(labels):
        raise InvalidRequest("invalid_parameters", "labels must be unique")
    return labels


def _parameters(raw: Mapping[str, Any], max_new_tokens_cap: int,
                caps: RequestLimits) -> GenerationParameters:
    bad = partial(InvalidRequest, "invalid_parameters")
    max_new = raw.get("max_new_tokens")
    if max_new is None:
        max_new = min(DEFAULT_MAX_NEW_TOKENS, max_new_tokens_cap)
    if not 1 <= max_new <= max_new_tokens_cap:
        raise bad(f"max_new_tokens must be 1..{max_new_tokens_cap} for this model")
    temperature = raw.get("temperature")
    temperature = 0.0 if temperature is None else float(temperature)
    # NaN fails every comparison, so test for it explicitly.
    if math.isnan(temperature) or not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise bad(f"temperature must be 0..{MAX_TEMPERATURE}")
    top_p = raw.get("top_p")
    top_p = 1.0 if top_p is None else float(top_p)
    if math.isnan(top_p) or not 0.0 < top_p <= 1.0:
        raise bad("top_p must be in (0, 1]")
    stop = tuple(raw.get("stop") or ())
    if len(stop) > caps.max_stop_sequences:
        raise bad(f"at most {caps.max_stop_sequences} stop sequences")
    if any(not 1 <= len(s) <= caps.max_stop_chars for s in stop):
        raise bad(f"stop sequences must be 1..{caps.max_stop_chars} characters")
    seed = raw.get("seed")
    if seed is not None and seed < 0:
        raise bad("seed must be >= 0")
    return GenerationParameters(int(max_new), temperature, top_p, stop, seed)
