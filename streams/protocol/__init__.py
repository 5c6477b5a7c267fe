"""What a request, a result, a token chunk and a dead letter are.

`requests` turns a decoded `InferenceRequest` into a validated `WorkItem` (or `InvalidRequest`
with a stable code), `results` and `chunks` build the records a worker answers with, and
`dead_letters` the DLQ copy of a refused record; `fit` cuts client-controlled parts of derived
records to what Kafka accepts. Pure: the caller passes clocks and sizes.

May import: the standard library, `models.base` and `models.limits` (the model contract),
`streams.errors`. Must not import: aiokafka, faust, clickhouse, torch, transformers.
"""
