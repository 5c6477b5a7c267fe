"""Lanes: one per served model version, behind one contract (`base.Lane`: admit, remove,
retire, idle, abandon, expiry, circuit breaker, a supervised loop).

- `static.StaticLane`: micro-batches computed in a `model_thread.ModelThread`, with batch
  timeouts, in-place retries of transient failures and bisection of poison pills;
- `streaming.StreamingLane`: a continuous-batching engine that admits requests into free
  sequence slots and streams their tokens.

Must not import: aiokafka or faust (a lane publishes through the hooks it is given).
"""
