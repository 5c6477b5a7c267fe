"""The contract between the service (streams/) and a model runtime (models/).

The worker hands a runner a batch of `ModelInput`s of one model and one task and gets one
`ModelOutput` per input, in order. A runner is called from a worker thread, never from the event
loop; an exception fails that batch only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Task = Literal["generate", "embed", "classify"]
TASKS: tuple[Task, ...] = ("generate", "embed", "classify")


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParameters:
    """Validated generation knobs (the service applies defaults and caps before this point)."""

    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class ModelInput:
    request_id: str
    text: str | None = None  # plain input (embed, classify, or a raw generate prompt)
    messages: tuple[ChatMessage, ...] = ()  # chat input for generate; the chat template applies
    labels: tuple[str, ...] = ()  # candidate labels for zero-shot classify
    parameters: GenerationParameters = field(default_factory=GenerationParameters)


@dataclass
class ModelOutput:
    text: str | None = None
    embedding: list[float] | None = None
    label: str | None = None
    score: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str | None = None  # "stop" | "length" for generate


@runtime_checkable
class ModelRunner(Protocol):
    """A loaded model that runs batches, each batch of one of its tasks."""

    name: str
    version: str
    tasks: tuple[Task, ...]  # e.g. ("embed", "classify") for a sentence encoder
    max_batch_size: int
    max_input_tokens: int
    max_new_tokens: int

    def count_tokens(self, item: ModelInput) -> int:
        """Input tokens `item` would use (after the chat template): for validation and budgets."""
        ...

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]:
        """One output per input, same order. Blocking; called off the event loop."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...


@dataclass(frozen=True)
class TokenEvent:
    """One step of a streamed generation. `delta` is the text added since the previous event of
    the same request (not cumulative); the last event has `finished=True` and either `output`
    (full text, tokens, finish_reason) or `error`."""

    request_id: str
    delta: str
    tokens_out: int  # generated tokens so far
    finished: bool = False
    output: ModelOutput | None = None
    error: str | None = None
    transient: bool = False  # the error may pass (a restarted engine): the request may be retried


@runtime_checkable
class StreamingGenerator(Protocol):
    """A generative model served by one long-lived engine that admits requests while others are
    decoding (iteration-level scheduling) and streams their text. It is also a `ModelRunner`
    (`run` submits a batch and waits), so the service can treat it like any other model."""

    name: str
    version: str
    tasks: tuple[Task, ...]
    max_batch_size: int  # sequences decoded together
    max_input_tokens: int
    max_new_tokens: int

    def count_tokens(self, item: ModelInput) -> int: ...

    def submit(self, item: ModelInput, on_event: Callable[[TokenEvent], None]) -> None:
        """Thread-safe and non-blocking. `on_event` is called from the engine's own thread, in
        order, ending with exactly one finished event. Raises `InvalidModelInput` (nothing is
        queued) for an input the model cannot compute; later failures arrive as error events."""
        ...

    def cancel(self, request_id: str) -> None:
        """Stop generating for `request_id`; it still gets exactly one finished event
        (finish_reason "cancelled"). Unknown or finished ids are ignored."""
        ...

    def run(self, task: Task, batch: Sequence[ModelInput]) -> list[ModelOutput]: ...

    def close(self) -> None: ...
