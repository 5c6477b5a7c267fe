"""The one place `TokenChunk` records (schemas/token_chunk.v1.avsc) are built."""

from __future__ import annotations

from typing import Any


def token_chunk(request_id: str, created_at_ms: int, *, model: str, version: str | None,
                seq: int, delta: str, tokens_out: int, final: bool, finish_reason: str | None,
                tokens_in: int, error: str | None, emitted_at_ms: int) -> dict[str, Any]:
    return {
        "request_id": request_id, "model": model, "model_version": version, "seq": seq,
        "delta": delta, "tokens_out": tokens_out, "final": final,
        "finish_reason": finish_reason, "tokens_in": tokens_in, "error": error,
        "created_at": created_at_ms, "emitted_at": emitted_at_ms,
    }


def final_chunk_of(result: dict[str, Any], emitted_at_ms: int) -> dict[str, Any]:
    """The single chunk of a streamed request answered without token-level progress (a static
    lane): the whole text, or the error."""
    error = result.get("error")
    ok = result["status"] == "ok"
    return token_chunk(result["request_id"], result["created_at"], model=result["model"],
                       version=result["model_version"], seq=0, delta=result.get("text") or "",
                       tokens_out=result["tokens_out"], final=True,
                       finish_reason=result.get("finish_reason") if ok else "error",
                       tokens_in=result["tokens_in"], error=error["message"] if error else None,
                       emitted_at_ms=emitted_at_ms)


def closing_chunk_of(result: dict[str, Any], seq: int) -> dict[str, Any]:
    """What a client yields to end a stream whose request was answered without a token
    (rejected, expired or shed): the status as the finish reason, and its error message."""
    error = result.get("error") or {}
    return token_chunk(result["request_id"], result["created_at"], model=result["model"],
                       version=result["model_version"], seq=seq, delta="", tokens_out=0,
                       final=True, finish_reason=result["status"], tokens_in=0,
                       error=error.get("message"), emitted_at_ms=result["completed_at"])
