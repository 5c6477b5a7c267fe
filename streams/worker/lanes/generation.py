"""One request in a streaming lane: its slot in the engine, its stream, its timings."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from models.base import TokenEvent
from streams.clock import epoch_ms
from streams.protocol.chunks import token_chunk
from streams.protocol.results import Timings
from streams.worker.jobs import Job

_slots = itertools.count()


@dataclass
class Generation:
    job: Job
    admitted_at_ms: float  # monotonic
    concurrency: int  # requests in the engine when this one was admitted
    attempts: int = 0
    seq: int = 0
    first_token_at_ms: float | None = None  # epoch (compared with the client's created_at)
    last_chunk: asyncio.Future[Any] | None = None
    events: list[TokenEvent] = field(default_factory=list)
    closed: bool = False  # answered, timed out or abandoned: later engine events are ignored
    abandoned: bool = False  # its partition was revoked: nothing more is sent for it
    slot: int = field(default_factory=lambda: next(_slots))  # a request id may be in flight twice
    # One writer at a time per request, so chunks are sent in seq order.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def timings(self, finished_ms: float) -> Timings:
        return Timings(batch_wait_ms=self.admitted_at_ms - self.job.enqueued_at_ms,
                       inference_ms=finished_ms - self.admitted_at_ms)

    def chunk(self, event: TokenEvent, model: str, version: str) -> dict[str, Any]:
        """The TokenChunk of `event`, numbered `seq`."""
        output, header = event.output, self.job.item.header
        reason = (output.finish_reason if output else "error") if event.finished else None
        return token_chunk(header.request_id, header.created_at_ms, model=model,
                           version=version, seq=self.seq, delta=event.delta,
                           tokens_out=event.tokens_out, final=event.finished,
                           finish_reason=reason, tokens_in=output.tokens_in if output else 0,
                           error=event.error, emitted_at_ms=int(epoch_ms()))
