"""W3C trace context in Kafka record headers: read it from anything a producer may send, and
write it for the records we produce.

Headers come from clients, so they are hostile input: any bytes, any size, repeated. What does
not parse as exactly one version-00 `traceparent` is ignored (the request starts a fresh trace),
never raised; a `tracestate` is kept only next to a valid `traceparent` and only when it is
short printable ASCII. Nothing here grows with the size of what was sent beyond one pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACEPARENT_BYTES = 55  # "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex
MAX_TRACESTATE_BYTES = 512  # W3C: vendors may drop a longer tracestate whole
_TRACEPARENT = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_TRACESTATE = re.compile(rb"[\x20-\x7e]*")  # printable ASCII; the SDK checks its members
_ZERO_TRACE, _ZERO_SPAN = b"0" * 32, b"0" * 16

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid incoming context: ids as integers (what OpenTelemetry's SpanContext takes)."""

    trace_id: int
    span_id: int
    flags: int
    tracestate: str = ""


def parse_traceparent(value: object) -> TraceParent | None:
    """The context of one `traceparent` value; None for anything that is not valid W3C."""
    if not isinstance(value, bytes | bytearray) or len(value) != TRACEPARENT_BYTES:
        return None
    match = _TRACEPARENT.fullmatch(bytes(value))
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None  # all-zero ids are invalid by the spec
    return TraceParent(int(trace_id, 16), int(span_id, 16), int(flags, 16))


def extract(headers: Iterable[tuple[object, object]] | None) -> TraceParent | None:
    """The trace context carried by a record's headers, or None (absent, malformed, repeated)."""
    if not headers:
        return None
    parent: bytes | None = None
    state: bytes | None = None
    seen_parent = seen_state = 0
    try:
        for name, value in headers:
            if name == TRACEPARENT:
                seen_parent += 1
                parent = value if isinstance(value, bytes) else None
            elif name == TRACESTATE:
                seen_state += 1
                state = value if isinstance(value, bytes) else None
    except (TypeError, ValueError):
        return None  # not (name, value) pairs: not something a Kafka client hands us
    if seen_parent != 1:
        return None  # none, or ambiguous: the spec says a repeated traceparent is invalid
    found = parse_traceparent(parent)
    if found is None:
        return None
    if seen_state == 1 and state is not None and len(state) <= MAX_TRACESTATE_BYTES \
            and _TRACESTATE.fullmatch(state):
        return TraceParent(found.trace_id, found.span_id, found.flags, state.decode("ascii"))
    return found


def inject(trace_id: int, span_id: int, flags: int, tracestate: str = "") -> Headers:
    """The headers that carry a span's context on a record we produce."""
    headers = [(TRACEPARENT, f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}".encode())]
    if tracestate:
        headers.append((TRACESTATE, tracestate.encode("ascii", errors="ignore")))
    return headers


def trace_headers_of(headers: Iterable[tuple[object, object]] | None) -> Headers:
    """The valid incoming trace headers, re-encoded (for answers without a span of their own:
    a `rejected` result keeps the client's trace)."""
    found = extract(headers)
    if found is None:
        return []
    return inject(found.trace_id, found.span_id, found.flags, found.tracestate)
