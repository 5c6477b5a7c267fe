"""The worker process: one consumer of the service's group, one lane per served model.

The request's path (docs/architecture.md): `fetcher` (poll, memory caps) → `admission` (decode,
caps, validate, route, reply topic) → a lane (`lanes/`: micro-batches in a model thread, or a
continuous-batching engine) → `answers` (guards against stale partitions) → `emitter`
(publish, acknowledgements, reduced forms, `repair`) → `rebalance` (commits, hand-overs, over
`offsets`). Refused records go through `rejection`. `supervisor` restarts crashed tasks and
`health` says what the worker can do. Its web face is `app` (the only faust module: `/metrics`,
`/health`, `/ready`) and `metrics` (the only module that creates Prometheus objects), fed by
`telemetry` through the `observer` protocol; `run` wires it all up.

May import: aiokafka, faust (only `app`), prometheus-client (only `metrics`), every other
streams package, `models` (through the runner contract). Must not import: torch or
transformers (they stay in `models/`).
"""
