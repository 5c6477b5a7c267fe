"""Dead-letter records: the original bytes plus Kafka-Connect-style error headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADER_PREFIX = "__connect.errors."


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(*, key: bytes | None, value: bytes | None, topic: str, partition: int,
                offset: int, error_class: str, message: str, code: str) -> DeadLetter:
    """The original record untouched, with where it came from and why it was refused."""
    headers = [
        (HEADER_PREFIX + "topic", topic.encode()),
        (HEADER_PREFIX + "partition", str(partition).encode()),
        (HEADER_PREFIX + "offset", str(offset).encode()),
        (HEADER_PREFIX + "exception.class.name", error_class.encode()),
        (HEADER_PREFIX + "exception.message", message.encode()[:4096]),
        (HEADER_PREFIX + "code", code.encode()),
    ]
    return DeadLetter(key, value, headers)


def headers_dict(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """Decoded error headers without the prefix, for clients and tests."""
    return {name.removeprefix(HEADER_PREFIX): value.decode(errors="replace")
            for name, value in headers if name.startswith(HEADER_PREFIX)}
