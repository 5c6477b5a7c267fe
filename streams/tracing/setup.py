"""A `Tracer` when tracing is on, None when off (the default); the SDK stays unimported then.

The exporter is OTLP over HTTP, configured the standard way by the SDK itself
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_SERVICE_NAME`,
`OTEL_TRACES_SAMPLER`, ...): this module reads no environment variable of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streams.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from streams.tracing.spans import Tracer

DEFAULT_SERVICE_NAME = "streamserve"


def open_tracing(enabled: bool) -> Tracer | None:
    """The process's tracer (OTLP exporter), or None when `enabled` is false."""
    if not enabled:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from streams.tracing.spans import Tracer
    except ImportError:
        raise ConfigError("STREAMSERVE_TRACING is on but OpenTelemetry is not installed: "
                          "pip install 'streamserve[tracing]'") from None
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracer(provider)


def memory_tracing() -> tuple[Tracer, InMemorySpanExporter]:
    """A tracer whose spans stay in memory, exported as each ends (the span tests, the bench's
    tracing-on arm); needs the extra installed."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from streams.tracing.spans import Tracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracer(provider), exporter
