"""streamserve: a Kafka-native inference service.

The public surface, for code that embeds or talks to the service:
`InferenceClient`, `new_request`, `ResultTimeout` (streams.client), `Settings`,
`load_settings` (streams.config) and the error tree's root `StreamserveError` (streams.errors).
They are loaded on first use, so importing a pure package (`streams.policy`,
`streams.protocol`) never pulls in Kafka clients.

Packages, outermost first (docs/architecture.md draws the request's path through them):
- `cli`       the `streamserve` command: argument parsing and dispatch, the demo;
- `client`    the Python client library and the send/tail commands;
- `worker`    the worker process: fetch loop, admission, lanes, emitter, commits, web face;
- `autoscale` sizing the worker pool from the backlog, the local supervisor;
- `analytics` the request log (ClickHouse), stats, plots, capacity planning;
- `kafka`     client options, topics, the local Apache Kafka stack;
- `protocol`  what a request, a result, a token chunk and a dead letter are (pure);
- `policy`    batching, shedding, routing and breaker decisions (pure);
- `wire`      bytes to records and back: Avro, Confluent framing, the schema registry.
Modules here: `config` (Settings), `errors` (the one error tree), `clock`, `redaction`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InferenceClient": "streams.client", "new_request": "streams.client",
    "ResultTimeout": "streams.client", "Settings": "streams.config",
    "load_settings": "streams.config", "StreamserveError": "streams.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
