"""Dead-letter records: the original bytes and headers plus Kafka-Connect-style error headers.

The original headers are kept (so a dead letter stays in its request's trace: `traceparent`),
up to `MAX_KEPT_HEADER_BYTES` in their order, without any error headers of an earlier failure
(a replayed dead letter that fails again says only why it failed this time)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADER_PREFIX = "__connect.errors."
MAX_KEPT_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(*, key: bytes | None, value: bytes | None, topic: str, partition: int,
                offset: int, error_class: str, message: str, code: str,
                original_headers: Sequence[tuple[str, bytes | None]] = ()) -> DeadLetter:
    """The original record untouched, with where it came from and why it was refused."""
    headers = [*_kept(original_headers),
        (HEADER_PREFIX + "topic", topic.encode()),
        (HEADER_PREFIX + "partition", str(partition).encode()),
        (HEADER_PREFIX + "offset", str(offset).encode()),
        (HEADER_PREFIX + "exception.class.name", error_class.encode()),
        (HEADER_PREFIX + "exception.message", message.encode()[:4096]),
        (HEADER_PREFIX + "code", code.encode()),
    ]
    return DeadLetter(key, value, headers)


def _kept(original: Sequence[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    kept, size = [], 0
    for name, value in original:
        if name.startswith(HEADER_PREFIX):
            continue
        size += len(name) + len(value or b"")
        if size > MAX_KEPT_HEADER_BYTES:
            break
        kept.append((name, value or b""))
    return kept


def headers_dict(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """Decoded error headers without the prefix, for clients and tests."""
    return {name.removeprefix(HEADER_PREFIX): value.decode(errors="replace")
            for name, value in headers if name.startswith(HEADER_PREFIX)}
