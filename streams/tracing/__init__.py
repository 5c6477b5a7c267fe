"""Trace context through Kafka: W3C `traceparent` / `tracestate` record headers and the spans
of a request's stages (README "Tracing").

`propagation` reads and writes the two headers (pure: any bytes in, a valid context or nothing
out); `spans` makes the request, stage and batch spans with OpenTelemetry; `setup` builds a
`Tracer` when `STREAMSERVE_TRACING` is on (the OTLP exporter reads the standard `OTEL_*`
variables). Tracing off, every caller holds `None` and pays one `is None` check per record.

May import: the standard library, opentelemetry (an optional extra: `streamserve[tracing]`,
imported only by `spans` and `setup`, lazily). Must not import: aiokafka, faust, clickhouse,
torch, the other streams packages (only the top-level `streams.clock` and `streams.errors`).
"""
