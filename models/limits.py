"""Per-model request caps and failure policy, read from a registry entry.

Caps are checked before any tokenizer or model work, so an oversize or absurd request costs
microseconds of the event loop, not the tokenizer's hundreds of milliseconds. Registry form:

    [[models]]
    name = "minilm"
    ...
    batch_timeout_s = 120          # a batch (or one generation) over this fails: model_timeout
    transient_retries = 2          # retries of a possibly transient failure (OOM, timeout)
    breaker_after = 5              # consecutive failed batches that open the circuit breaker
    [models.limits]
    max_request_bytes = 1048576    # the encoded request, key included
    max_input_chars = 8192         # text, or all chat messages together
    max_messages = 64
    ...
"""

from __future__ import annotations

from dataclasses import dataclass

from models.spec_fields import EntryReader

CHARS_PER_TOKEN_CAP = 32  # default max_input_chars = this × max_input_tokens (generous on purpose)


@dataclass(frozen=True)
class RequestLimits:
    max_request_bytes: int = 1024 * 1024
    max_input_chars: int = 0  # 0 = CHARS_PER_TOKEN_CAP × the model's max_input_tokens
    max_messages: int = 64
    max_labels: int = 32
    max_label_chars: int = 128
    max_stop_sequences: int = 4
    max_stop_chars: int = 64
    max_priority: int = 1000  # priority must lie in [-max_priority, max_priority]
    max_deadline_s: float = 86_400.0  # a deadline at most this far after created_at
    max_attributes: int = 32
    max_attribute_chars: int = 1024  # per key and per value

    def input_chars(self, max_input_tokens: int) -> int:
        return self.max_input_chars or CHARS_PER_TOKEN_CAP * max_input_tokens


@dataclass(frozen=True)
class FailurePolicy:
    batch_timeout_s: float = 300.0
    transient_retries: int = 2
    retry_backoff_s: float = 0.5  # doubles with each retry
    breaker_after: int = 5
    breaker_cooldown_s: float = 10.0  # an open breaker lets one probe batch through this often


def read_limits(reader: EntryReader) -> RequestLimits:
    table = reader.table("limits")
    if table is None:
        return RequestLimits()
    d = RequestLimits()
    limits = RequestLimits(
        max_request_bytes=table.integer("max_request_bytes", default=d.max_request_bytes,
                                        minimum=64),
        max_input_chars=table.integer("max_input_chars", default=d.max_input_chars, minimum=0),
        max_messages=table.integer("max_messages", default=d.max_messages, minimum=1),
        max_labels=table.integer("max_labels", default=d.max_labels, minimum=1),
        max_label_chars=table.integer("max_label_chars", default=d.max_label_chars, minimum=1),
        max_stop_sequences=table.integer("max_stop_sequences", default=d.max_stop_sequences,
                                         minimum=0),
        max_stop_chars=table.integer("max_stop_chars", default=d.max_stop_chars, minimum=1),
        max_priority=table.integer("max_priority", default=d.max_priority, minimum=0),
        max_deadline_s=table.number("max_deadline_s", default=d.max_deadline_s, minimum=1.0),
        max_attributes=table.integer("max_attributes", default=d.max_attributes, minimum=0),
        max_attribute_chars=table.integer("max_attribute_chars",
                                          default=d.max_attribute_chars, minimum=1),
    )
    table.finish()
    return limits


def read_failure_policy(reader: EntryReader) -> FailurePolicy:
    d = FailurePolicy()
    return FailurePolicy(
        batch_timeout_s=reader.number("batch_timeout_s", default=d.batch_timeout_s, minimum=0.1),
        transient_retries=reader.integer("transient_retries", default=d.transient_retries,
                                         minimum=0),
        retry_backoff_s=reader.number("retry_backoff_s", default=d.retry_backoff_s, minimum=0.0),
        breaker_after=reader.integer("breaker_after", default=d.breaker_after, minimum=1),
        breaker_cooldown_s=reader.number("breaker_cooldown_s", default=d.breaker_cooldown_s,
                                         minimum=0.0),
    )
