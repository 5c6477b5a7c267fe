"""Answers without compute: a record refused at admission, or a request the model failed on.

A refused record goes to the DLQ untouched with Kafka-Connect-style error headers; when its
request id is readable it also gets a `rejected` result on the results topic, so its client
hears back. A request the model failed on (after retries and isolation) gets its error result
on its reply topic plus its dead letter, so an operator can replay it once the model is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.clock import epoch_ms
from streams.errors import InvalidRequest
from streams.protocol.dead_letters import dead_letter
from streams.protocol.fit import Headers
from streams.protocol.header import RequestHeader
from streams.protocol.results import rejected_result
from streams.tracing.propagation import trace_headers_of
from streams.worker.emitter import Emitter
from streams.worker.jobs import Source
from streams.worker.observer import WorkerObserver
from streams.worker.outcomes import OnSent

# (published result or None, source, task) -> request-log/metrics bookkeeping
Logged = Callable[[dict[str, Any] | None, Source, str], None]


class Rejector:
    def __init__(self, emitter: Emitter, observer: WorkerObserver, worker_id: str,
                 tracing: bool = False) -> None:
        self._emitter = emitter
        self._tracing = tracing
        self._observer = observer
        self._worker_id = worker_id

    async def reject(self, source: Source, code: str, error: BaseException,
                     header: RequestHeader | None, task: str = "") -> None:
        """Dead-letter the record at `source`; `rejected` result too when its id is known."""
        letter = dead_letter(key=source.key, value=source.value, topic=source.tp.topic,
                             partition=source.tp.partition, offset=source.offset,
                             original_headers=source.headers,
                             error_class=type(error).__name__, message=_short(error), code=code)
        result = None
        if header is not None and header.request_id.strip():
            refusal = error if isinstance(error, InvalidRequest) else InvalidRequest(
                code, "the request could not be admitted")
            result = rejected_result(header, refusal, worker_id=self._worker_id,
                                     completed_at_ms=int(epoch_ms()))
        self._observer.dead_lettered(code)
        # No request span yet (refused before one was made): the result keeps the client's.
        await self._emitter.dead_letter(letter, source, result, self._logged(source, task),
                                        result_headers=trace_headers_of(source.headers)
                                        if self._tracing else None)

    async def failed(self, result: dict[str, Any], source: Source, reply_topic: str | None,
                     error: BaseException | str, on_sent: OnSent,
                     trace_headers: Headers | None = None) -> None:
        """A request the model failed on: its error result (with `trace_headers`: its request
        span's context), and its dead letter."""
        code = str((result.get("error") or {}).get("code", "model_error"))
        error_class = type(error).__name__ if isinstance(error, BaseException) else "ModelError"
        message = _short(error) if isinstance(error, BaseException) else str(error)[:1000]
        letter = dead_letter(key=source.key, value=source.value, topic=source.tp.topic,
                             partition=source.tp.partition, offset=source.offset,
                             original_headers=source.headers,
                             error_class=error_class, message=message, code=code)
        self._observer.dead_lettered(code)
        await self._emitter.dead_letter(letter, source, result, on_sent, result_topic=reply_topic,
                                        result_headers=trace_headers)

    def _logged(self, source: Source, task: str) -> OnSent:
        def sent(published: dict[str, Any] | None) -> None:
            if published is not None:
                self._observer.result_sent(published, source, None, None, task)

        return sent


def _short(error: BaseException) -> str:
    """For the DLQ headers (operators read them): the error's own message, bounded."""
    try:
        return str(error)[:1000]
    except Exception:  # noqa: BLE001 - a broken __str__ must not stop the rejection
        return type(error).__name__
