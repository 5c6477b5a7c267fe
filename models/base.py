"""The contract between the service (streams/) and a model runtime (models/).

The worker hands a runner a batch of `ModelInput`s of one model and one task and gets one
`ModelOutput` per input, in order. A runner is called from a worker thread, never from the event
loop; an exception fails that batch only.
"""

from __future__ import annotations

from collections.abc import Sequence
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
