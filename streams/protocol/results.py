"""InferenceResult records, built only here so every status fills every field the same way.

Timings are milliseconds. kafka_wait = received - created_at and total = completed_at -
created_at are derived from the request header, so no caller can make them disagree; both use
the client's clock for created_at and may be negative when that clock runs ahead. The worker
supplies the in-process parts (`Timings`): batch_wait = enqueued in the micro-batcher until its
batch formed, queue_wait = batch formed until inference started, inference = the runner's call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.base import ModelOutput
from streams.errors import InvalidRequest
from streams.protocol.header import RequestHeader


@dataclass(frozen=True, slots=True)
class Timings:
    batch_wait_ms: float = 0.0
    queue_wait_ms: float = 0.0
    inference_ms: float = 0.0


_NO_TIMINGS = Timings()


def ok_result(
    header: RequestHeader,
    output: ModelOutput,
    *,
    model_version: str,
    worker_id: str,
    completed_at_ms: int,
    timings: Timings,
    batch_size: int,
) -> dict[str, Any]:
    result = _base(header, "ok", model_version, worker_id, completed_at_ms, timings, batch_size)
    result.update(
        text=output.text,
        embedding=output.embedding,
        label=output.label,
        score=output.score,
        finish_reason=output.finish_reason,
        tokens_in=output.tokens_in,
        tokens_out=output.tokens_out,
    )
    return result


def error_result(
    header: RequestHeader,
    code: str,
    message: str,
    *,
    worker_id: str,
    completed_at_ms: int,
    model_version: str | None = None,
    timings: Timings = _NO_TIMINGS,
    batch_size: int = 0,
) -> dict[str, Any]:
    """Inference was attempted and failed (runner exception, model crash)."""
    result = _base(header, "error", model_version, worker_id, completed_at_ms, timings, batch_size)
    result["error"] = {"code": code, "message": message}
    return result


def rejected_result(
    header: RequestHeader, error: InvalidRequest, *, worker_id: str, completed_at_ms: int
) -> dict[str, Any]:
    """The request broke a rule (validation, unknown model); no model ran."""
    result = _base(header, "rejected", None, worker_id, completed_at_ms, _NO_TIMINGS, 0)
    result["error"] = {"code": error.code, "message": error.message}
    return result


def expired_result(
    header: RequestHeader,
    *,
    worker_id: str,
    completed_at_ms: int,
    timings: Timings = _NO_TIMINGS,
) -> dict[str, Any]:
    """The deadline passed before compute (on arrival or while queued); no model ran."""
    return _base(header, "expired", None, worker_id, completed_at_ms, timings, 0)


def shed_result(
    header: RequestHeader, *, worker_id: str, completed_at_ms: int, estimated_completion_ms: float
) -> dict[str, Any]:
    """Refused before queueing: the backlog ahead means it would finish after its deadline."""
    result = _base(header, "expired", None, worker_id, completed_at_ms, _NO_TIMINGS, 0)
    late_by = estimated_completion_ms - completed_at_ms
    result["error"] = {
        "code": "shed",
        "message": f"the backlog ahead would finish it about {late_by:.0f} ms from now, "
        "after its deadline; shed without compute",
    }
    return result


def _base(
    header: RequestHeader,
    status: str,
    model_version: str | None,
    worker_id: str,
    completed_at_ms: int,
    timings: Timings,
    batch_size: int,
) -> dict[str, Any]:
    return {
        "request_id": header.request_id,
        "model": header.model,
        "model_version": model_version,
        "status": status,
        "text": None,
        "embedding": None,
        "label": None,
        "score": None,
        "finish_reason": None,
        "tokens_in": 0,
        "tokens_out": 0,
        "timings": {
            "kafka_wait_ms": float(header.received_at_ms - header.created_at_ms),
            "queue_wait_ms": float(timings.queue_wait_ms),
            "batch_wait_ms": float(timings.batch_wait_ms),
            "inference_ms": float(timings.inference_ms),
            "total_ms": float(completed_at_ms - header.created_at_ms),
        },
        "batch_size": batch_size,
        "worker_id": worker_id,
        "error": None,
        "created_at": header.created_at_ms,
        "completed_at": completed_at_ms,
        "time_to_first_token_ms": None,
        "attributes": dict(header.attributes),
    }


def rejected_instead(result: dict[str, Any], code: str, message: str, *,
                     worker_id: str) -> dict[str, Any]:
    """A `rejected` answer replacing `result` (e.g. its reply topic refused it), for the same
    request: same id, model, attributes and client times."""
    header = RequestHeader(
        request_id=result["request_id"], model=result["model"],
        model_version=result.get("model_version"), created_at_ms=int(result["created_at"]),
        received_at_ms=float(result["created_at"]) + float(result["timings"]["kafka_wait_ms"]),
        attributes=dict(result.get("attributes") or {}))
    return rejected_result(header, InvalidRequest(code, message), worker_id=worker_id,
                           completed_at_ms=int(result["completed_at"]))
