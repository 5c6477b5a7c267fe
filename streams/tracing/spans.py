"""The spans of a request through a worker, made with OpenTelemetry from timestamps the worker
already takes (no code is wrapped: each stage span gets its start and end explicitly).

One trace per request: the client's `send` span (PRODUCER) → the worker's `streamserve.request`
(CONSUMER, from the client's `created_at` to the result's acknowledgement) → its stages
`kafka_wait`, `batch_wait`, `queue_wait`, `inference`, `publish`. A static lane's micro-batch is
one `streamserve.batch` span of its own, linked to the request span of every request in it.
The request span's context goes out in the headers of its result and token chunks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from streams.clock import epoch_ms, mono_to_epoch
from streams.tracing.propagation import Headers, TraceParent, extract, inject

MAX_ATTRIBUTE_CHARS = 128  # request ids and model names are client strings: bounded
STAGES = ("batch_wait_ms", "queue_wait_ms", "inference_ms")  # in order, each after the last


def _ns(ms: float) -> int:
    return int(ms * 1_000_000)


def _parent(found: TraceParent | None) -> Context:
    """The client's context as a parent, or an empty context (a fresh trace, never whatever
    span happens to be current on the worker's event loop)."""
    if found is None:
        return Context()
    try:
        state = TraceState.from_header([found.tracestate]) if found.tracestate else None
    except ValueError:
        state = None  # a tracestate the SDK refuses: the traceparent still holds
    remote = SpanContext(found.trace_id, found.span_id, is_remote=True,
                         trace_flags=TraceFlags(found.flags), trace_state=state)
    return trace.set_span_in_context(NonRecordingSpan(remote))


def _headers(span: Span) -> Headers:
    ctx = span.get_span_context()
    return inject(ctx.trace_id, ctx.span_id, int(ctx.trace_flags), ctx.trace_state.to_header())


class RequestTrace:
    """One request's span on a worker, opened at admission and closed once its result is
    acknowledged; `headers` carry its context on the records it produces."""

    __slots__ = ("_context", "_tracer", "headers", "span")

    def __init__(self, tracer: trace.Tracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._context = trace.set_span_in_context(span)
        self.headers = _headers(span)

    def stage(self, name: str, start_ms: float, end_ms: float) -> None:
        child = self._tracer.start_span(name, context=self._context, start_time=_ns(start_ms))
        child.end(end_time=_ns(max(start_ms, end_ms)))

    def stages(self, enqueued_at_mono_ms: float, result: Mapping[str, Any]) -> None:
        """batch_wait → queue_wait → inference, back to back from when the request was queued,
        with the durations its result reports; nothing for a request that never ran."""
        if result.get("status") not in ("ok", "error"):
            return  # expired, shed or rejected: no stage timings (Timings.from_ms agrees)
        timings = result.get("timings") or {}
        start = mono_to_epoch(enqueued_at_mono_ms) or epoch_ms()
        for key in STAGES:
            duration = float(timings.get(key) or 0.0)
            self.stage(key.removesuffix("_ms"), start, start + duration)
            start += duration

    def finished(self, publish_started_ms: float, result: Mapping[str, Any] | None) -> None:
        """The result is acknowledged: the publish span, then the request span, end now."""
        now = epoch_ms()
        self.stage("publish", publish_started_ms, now)
        status = str((result or {}).get("status") or "unknown")
        self.span.set_attribute("streamserve.status", status)
        if status == "error":
            self.span.set_status(Status(StatusCode.ERROR, "model error"))
        self.span.end(end_time=_ns(now))

    def dropped(self, reason: str) -> None:
        """No result from this worker (its partition moved: the new owner answers)."""
        self.span.set_attribute("streamserve.dropped", reason)
        self.span.end()


class ClientSend:
    """The client's span around publishing one request; `headers` go on the request record."""

    __slots__ = ("headers", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.headers = _headers(span)

    def end(self) -> None:
        self.span.end()


class Tracer:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("streamserve")

    def request(self, headers: Iterable[tuple[object, object]] | None, request_id: str,
                model: str,
                created_at_ms: float, consumed_at_ms: float) -> RequestTrace:
        """The request span of a consumed record (child of the client's context when its
        headers carry a valid one), with its kafka_wait stage."""
        # created_at is the client's clock: a request "created" after we consumed it (skew, or
        # a made-up value) starts at consumption, so no span runs backwards.
        start = created_at_ms if 0 < created_at_ms <= consumed_at_ms else consumed_at_ms
        span = self._tracer.start_span(
            "streamserve.request", context=_parent(extract(headers)), kind=SpanKind.CONSUMER,
            start_time=_ns(start),
            attributes={"streamserve.request_id": request_id[:MAX_ATTRIBUTE_CHARS],
                        "streamserve.model": model[:MAX_ATTRIBUTE_CHARS]})
        request = RequestTrace(self._tracer, span)
        request.stage("kafka_wait", start, consumed_at_ms)
        return request

    def batch(self, model: str, requests: Sequence[RequestTrace | None],
              formed_at_mono_ms: float, finished_at_mono_ms: float) -> None:
        """One micro-batch's span, linked to the request span of each request in it."""
        links = [Link(r.span.get_span_context()) for r in requests if r is not None]
        if not links:
            return
        now = epoch_ms()
        start = mono_to_epoch(formed_at_mono_ms) or now
        end = mono_to_epoch(finished_at_mono_ms) or now
        span = self._tracer.start_span(
            "streamserve.batch", context=Context(), links=links, start_time=_ns(start),
            attributes={"streamserve.model": model[:MAX_ATTRIBUTE_CHARS],
                        "streamserve.batch_size": len(requests)})
        span.end(end_time=_ns(max(start, end)))

    def client_send(self, topic: str, request_id: str) -> ClientSend:
        """A PRODUCER span, child of whatever span is current in the caller's context."""
        span = self._tracer.start_span(
            "streamserve.send", kind=SpanKind.PRODUCER,
            attributes={"messaging.destination.name": topic[:MAX_ATTRIBUTE_CHARS],
                        "streamserve.request_id": request_id[:MAX_ATTRIBUTE_CHARS]})
        return ClientSend(span)

    def flush(self, timeout_ms: int = 5_000) -> None:
        self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.provider.shutdown()
