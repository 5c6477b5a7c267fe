"""Reduced forms of the records a worker derives from a client's record (pure, no Kafka).

A dead letter copies the client's bytes and a `rejected` result echoes the client's request id
and attributes, so a hostile or careless record can make them unproducible as they are: too
large for the producer or the topic, a key longer than any id we accept, nothing to send at
all. Instead of crashing (the record would stay uncommitted and stop every next owner of its
partition) or dropping the outcome, the worker sends a reduced form and says what was cut in
the `CUT_HEADER` header, e.g. `value:4194500->65536,key:300000->256`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

CUT_HEADER = "streamserve.cut"
MAX_KEY_BYTES = 256  # the longest valid request id is 128 characters (512 UTF-8 bytes at most)
MAX_ID_CHARS = 128
# One record's fixed overhead in a batch (aiokafka's estimate) plus room for our headers.
RECORD_OVERHEAD_BYTES = 1024
# The value sizes a dead letter is cut to when the full copy is refused, largest first; the last
# step keeps only the coordinates and the error headers.
DLQ_VALUE_STEPS = (64 * 1024, 0)
MAX_ATTRIBUTES_BYTES = 4096

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Outgoing:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers

    @property
    def size(self) -> int:
        return (len(self.key or b"") + len(self.value) + RECORD_OVERHEAD_BYTES
                + sum(len(name) + len(data) for name, data in self.headers))


def cut_note(cuts: Sequence[str]) -> Headers:
    return [(CUT_HEADER, ",".join(cuts).encode())] if cuts else []


def fit_dead_letter(record: Outgoing, max_bytes: int, value_cap: int | None = None) -> Outgoing:
    """`record` (a dead letter) within `max_bytes`; with `value_cap`, its value is cut to at most
    that many bytes whatever its size (used after the broker refused the full copy)."""
    if value_cap is None and record.size <= max_bytes:
        return record  # the original, untouched: it fits
    cuts: list[str] = []
    key = record.key
    if key is not None and len(key) > MAX_KEY_BYTES:
        cuts.append(f"key:{len(key)}->{MAX_KEY_BYTES}")
        key = key[:MAX_KEY_BYTES]
    value = record.value
    room = max_bytes - (len(key or b"") + RECORD_OVERHEAD_BYTES
                        + sum(len(n) + len(d) for n, d in record.headers) + 64)
    cap = max(0, room) if value_cap is None else max(0, min(room, value_cap))
    if len(value) > cap:
        cuts.append(f"value:{len(value)}->{cap}")
        value = value[:cap]
    if not cuts:
        return record
    headers = [(n, d) for n, d in record.headers if n != CUT_HEADER] + cut_note(cuts)
    return replace(record, key=key, value=value, headers=headers)


def fit_result(result: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A result whose client-controlled parts are cut to sane sizes, and what was cut.

    Only a result that echoes a bad request needs this: a valid request's id and attributes are
    already within the caps the admission checks enforce."""
    cuts: list[str] = []
    for name in ("request_id", "model", "model_version"):
        value = result.get(name)
        if isinstance(value, str) and len(value) > MAX_ID_CHARS:
            cuts.append(f"{name}:{len(value)}->{MAX_ID_CHARS}")
            result = {**result, name: value[:MAX_ID_CHARS]}
    attributes = result.get("attributes") or {}
    size = sum(len(str(k)) + len(str(v)) for k, v in attributes.items())
    if size > MAX_ATTRIBUTES_BYTES:
        cuts.append(f"attributes:{size}->0")
        result = {**result, "attributes": {}}
    return result, cuts


def shrink_result(result: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The last resort for a result Kafka refused as too large: drop the bulky payload fields
    (text, embedding, attributes) and keep status, ids, timings and the error."""
    cuts = [name for name in ("text", "embedding", "attributes") if result.get(name)]
    shrunk = {**result, "text": None, "embedding": None, "attributes": {}}
    return shrunk, [f"{name}:dropped" for name in cuts]
