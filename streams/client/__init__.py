"""The Python client: publish requests and await their results by id (`InferenceClient`,
`new_request`), stream tokens, and the `streamserve send` / `tail` commands (`commands`).

May import: aiokafka, `streams.kafka`, `streams.wire`, `streams.protocol`, `streams.config`,
`streams.tracing` (a no-op unless tracing is on).
Must not import: faust, clickhouse, torch, or the worker.
"""

from streams.client.library import InferenceClient, ResultTimeout, new_request

__all__ = ["InferenceClient", "ResultTimeout", "new_request"]
