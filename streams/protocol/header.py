"""The header of a request: what every answer needs, known even for a request that fails
validation (so that it can be answered with `rejected`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """What every result needs, known even for a request that fails validation."""

    request_id: str
    model: str
    model_version: str | None
    created_at_ms: int
    received_at_ms: float  # when the worker consumed it: kafka_wait = received - created
    reply_topic: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, record: Mapping[str, Any], received_at_ms: float) -> RequestHeader:
        # Lenient on purpose: records come from the codec, so types hold, but the header of
        # a broken request must still be buildable to answer it.
        return cls(
            request_id=str(record.get("request_id", "")),
            model=str(record.get("model", "")),
            model_version=record.get("model_version"),
            created_at_ms=int(record.get("created_at", 0)),
            received_at_ms=received_at_ms,
            reply_topic=record.get("reply_topic"),
            attributes=dict(record.get("attributes") or {}),
        )
