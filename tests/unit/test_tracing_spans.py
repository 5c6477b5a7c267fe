"""The spans a worker makes for a request, checked with the SDK's in-memory exporter: the
parent/child structure, the batch links, the headers the answers carry; and that without
OpenTelemetry installed (tracing off) nothing changes."""

from __future__ import annotations

import subprocess
import sys

from opentelemetry.sdk.trace import ReadableSpan

from streams.clock import epoch_ms, mono_ms
from streams.tracing.propagation import extract, inject
from streams.tracing.setup import memory_tracing, open_tracing

CLIENT_TRACE, CLIENT_SPAN = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7




def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def ok(queue: float, batch: float, inference: float) -> dict[str, object]:
    return {"status": "ok", "timings": {"batch_wait_ms": batch, "queue_wait_ms": queue,
                                        "inference_ms": inference}}


def test_the_request_span_is_the_clients_child_and_parents_every_stage() -> None:
    t, exporter = memory_tracing()
    now = epoch_ms()
    request = t.request(inject(CLIENT_TRACE, CLIENT_SPAN, 1), "r1", "echo", now - 30, now - 20)
    request.stages(mono_ms() - 15, ok(queue=2.0, batch=3.0, inference=5.0))
    request.finished(epoch_ms(), {"status": "ok"})
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"streamserve.request", "kafka_wait", "batch_wait", "queue_wait",
                          "inference", "publish"}
    root = spans.pop("streamserve.request")
    assert root.context is not None and root.parent is not None
    assert (root.parent.trace_id, root.parent.span_id) == (CLIENT_TRACE, CLIENT_SPAN)
    assert root.context.trace_id == CLIENT_TRACE
    assert root.attributes is not None and root.attributes["streamserve.status"] == "ok"
    for span in spans.values():
        assert span.parent is not None and span.parent.span_id == root.context.span_id
    assert spans["kafka_wait"].start_time == root.start_time  # from the client's created_at
    durations = {name: (s.end_time or 0) - (s.start_time or 0) for name, s in spans.items()}
    # the durations the result reports (to a microsecond: ms floats become ns integers)
    assert abs(durations["batch_wait"] - 3_000_000) < 1_000
    assert abs(durations["inference"] - 5_000_000) < 1_000
    # back to back: each stage starts where the one before ended
    assert spans["batch_wait"].end_time == spans["queue_wait"].start_time
    assert spans["queue_wait"].end_time == spans["inference"].start_time
    # the answers carry the request span's own context, in the client's trace
    carried = extract(request.headers)
    assert carried is not None
    assert (carried.trace_id, carried.span_id) == (CLIENT_TRACE, root.context.span_id)


def test_junk_trace_headers_start_a_fresh_trace() -> None:
    t, exporter = memory_tracing()
    now = epoch_ms()
    for junk in ([("traceparent", b"\x00" * 55)], [("traceparent", b"0" * 10_000_000)], None):
        t.request(junk, "r", "echo", now, now).finished(now, None)
    roots = [s for s in exporter.get_finished_spans() if s.name == "streamserve.request"]
    assert len(roots) == 3 and all(s.parent is None for s in roots)
    assert len({s.context.trace_id for s in roots if s.context}) == 3


def test_a_client_clock_ahead_of_the_worker_never_makes_a_span_run_backwards() -> None:
    t, exporter = memory_tracing()
    now = epoch_ms()
    t.request(None, "r", "echo", now + 60_000, now).finished(now, {"status": "expired"})
    spans = by_name(exporter.get_finished_spans())
    assert all((s.end_time or 0) >= (s.start_time or 0) for s in spans.values())
    assert "inference" not in spans  # an expired request never ran: no stage spans


def test_the_batch_span_links_to_every_request_span_in_it() -> None:
    t, exporter = memory_tracing()
    now = epoch_ms()
    requests = [t.request(None, f"r{i}", "echo", now, now) for i in range(3)]
    t.batch("echo", [*requests, None], mono_ms() - 5, mono_ms())
    batch = by_name(exporter.get_finished_spans())["streamserve.batch"]
    linked = {link.context.span_id for link in batch.links}
    assert linked == {r.span.get_span_context().span_id for r in requests}
    assert batch.attributes is not None and batch.attributes["streamserve.batch_size"] == 4


def test_the_client_send_span_is_a_child_of_the_callers_current_span() -> None:
    t, exporter = memory_tracing()
    with t.provider.get_tracer("app").start_as_current_span("app work") as app:
        send = t.client_send("inference.requests", "r1")
        send.end()
    spans = by_name(exporter.get_finished_spans())
    sent = spans["streamserve.send"]
    assert sent.parent is not None and sent.parent.span_id == app.get_span_context().span_id
    carried = extract(send.headers)
    assert carried is not None and sent.context is not None
    assert carried.span_id == sent.context.span_id


def test_off_by_default_and_nothing_needs_opentelemetry_when_off() -> None:
    assert open_tracing(False) is None
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import streams.worker.engine, streams.client.library, streams.worker.run\n"
        "from streams.errors import ConfigError\n"
        "from streams.tracing.setup import open_tracing\n"
        "assert open_tracing(False) is None\n"
        "try:\n"
        "    open_tracing(True)\n"
        "except ConfigError as exc:\n"
        "    assert 'streamserve[tracing]' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('tracing on without OpenTelemetry must say so')\n"
        "assert not any(m.startswith('opentelemetry') for m in sys.modules if sys.modules[m])\n")
    subprocess.run([sys.executable, "-c", code], check=True)
