"""W3C trace context in Kafka headers: valid contexts pass, anything else is ignored (never
raised), whatever bytes and sizes a producer sends."""

from __future__ import annotations

import os

import pytest

from streams.protocol.dead_letters import MAX_KEPT_HEADER_BYTES, dead_letter
from streams.tracing.propagation import (
    MAX_TRACESTATE_BYTES,
    TraceParent,
    extract,
    inject,
    parse_traceparent,
    trace_headers_of,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01".encode()


def test_a_valid_traceparent_and_tracestate_are_read() -> None:
    found = extract([("other", b"x"), ("traceparent", VALID), ("tracestate", b"vendor=abc")])
    assert found == TraceParent(int(TRACE_ID, 16), int(SPAN_ID, 16), 1, "vendor=abc")


def test_inject_writes_what_extract_reads() -> None:
    headers = inject(int(TRACE_ID, 16), int(SPAN_ID, 16), 1, "a=1,b=2")
    assert headers == [("traceparent", VALID), ("tracestate", b"a=1,b=2")]
    assert extract(headers) == TraceParent(int(TRACE_ID, 16), int(SPAN_ID, 16), 1, "a=1,b=2")
    assert inject(1, 2, 0) == [("traceparent", b"00-" + b"0" * 31 + b"1-" + b"0" * 15
                                + b"2-00")]  # no tracestate header when there is none


@pytest.mark.parametrize("value", [
    VALID.upper(),  # the spec says lowercase hex
    VALID[:-1],  # one byte short
    VALID + b"-",  # version 00 has exactly four fields
    b"ff" + VALID[2:],  # version ff is forbidden; other versions are not ours to guess
    f"00-{'0' * 32}-{SPAN_ID}-01".encode(),  # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01".encode(),  # all-zero span id
    VALID.replace(b"-", b"_"),
    b"",
    b"\xff\xfe\x00" * 19,  # binary junk, traceparent-sized
    VALID.decode(),  # a str, not bytes: not what aiokafka hands us
    None,
])
def test_a_malformed_traceparent_is_ignored(value: object) -> None:
    assert parse_traceparent(value) is None
    assert extract([("traceparent", value)]) is None  # type: ignore[list-item]


def test_an_oversize_or_binary_traceparent_is_ignored() -> None:
    assert extract([("traceparent", VALID * 100_000)]) is None  # 5.5 MB
    assert extract([("traceparent", os.urandom(1 << 20))]) is None
    assert extract([("traceparent", os.urandom(55))]) is None


def test_a_repeated_traceparent_is_ambiguous_and_ignored() -> None:
    assert extract([("traceparent", VALID), ("traceparent", VALID)]) is None


def test_a_bad_tracestate_is_dropped_but_the_traceparent_holds() -> None:
    for state in (b"x" * (MAX_TRACESTATE_BYTES + 1), b"bin\x00\xff", os.urandom(64)):
        found = extract([("traceparent", VALID), ("tracestate", state)])
        assert found is not None and found.trace_id == int(TRACE_ID, 16)
        assert found.tracestate == ""


@pytest.mark.parametrize("headers", [None, [], [("a", b"b")], "junk", [("only-one",)],
                                     [(b"traceparent", VALID)], [(None, None)]])
def test_headers_of_any_shape_never_raise(headers: object) -> None:
    assert extract(headers) is None  # type: ignore[arg-type]
    assert trace_headers_of(headers) == []  # type: ignore[arg-type]


def test_thousands_of_junk_headers_cost_one_pass_and_no_error() -> None:
    headers = [(f"h{i}", os.urandom(32)) for i in range(10_000)] + [("traceparent", VALID)]
    assert trace_headers_of(headers) == [("traceparent", VALID)]


def test_a_dead_letter_keeps_the_incoming_headers_within_a_bound() -> None:
    incoming: list[tuple[str, bytes | None]] = [
        ("traceparent", VALID), ("__connect.errors.code", b"old"), ("empty", None),
        ("big", b"x" * MAX_KEPT_HEADER_BYTES), ("after", b"y")]
    letter = dead_letter(key=b"k", value=b"v", topic="t", partition=0, offset=3,
                         error_class="E", message="m", code="c", original_headers=incoming)
    names = [name for name, _ in letter.headers]
    assert names[:2] == ["traceparent", "empty"]  # in order; an earlier failure's note dropped
    assert "big" not in names and "after" not in names  # past the bound: not kept
    assert dict(letter.headers)["__connect.errors.code"] == b"c"
    assert sum(len(n) + len(v) for n, v in letter.headers) < MAX_KEPT_HEADER_BYTES
