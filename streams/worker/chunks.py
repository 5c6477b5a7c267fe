"""The one place a worker builds `TokenChunk` records (schemas/token_chunk.v1.avsc)."""

from __future__ import annotations

from typing import Any

from streams.requests import RequestHeader


def token_chunk(header: RequestHeader, *, model: str, version: str, seq: int, delta: str,
                tokens_out: int, final: bool, finish_reason: str | None, tokens_in: int,
                error: str | None, emitted_at_ms: int) -> dict[str, Any]:
    return {
        "request_id": header.request_id, "model": model, "model_version": version, "seq": seq,
        "delta": delta, "tokens_out": tokens_out, "final": final,
        "finish_reason": finish_reason, "tokens_in": tokens_in, "error": error,
        "created_at": header.created_at_ms, "emitted_at": emitted_at_ms,
    }


def final_chunk_of(result: dict[str, Any], header: RequestHeader,
                   emitted_at_ms: int) -> dict[str, Any]:
    """The single chunk of a streamed request answered without token-level progress (a static
    lane, or a request that ended before its first token): the whole text, or the reason."""
    error = result.get("error")
    ok = result["status"] == "ok"
    return token_chunk(header, model=result["model"], version=result["model_version"], seq=0,
                       delta=result.get("text") or "", tokens_out=result["tokens_out"],
                       final=True, finish_reason=result.get("finish_reason") if ok else "error",
                       tokens_in=result["tokens_in"], error=error["message"] if error else None,
                       emitted_at_ms=emitted_at_ms)
