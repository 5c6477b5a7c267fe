"""Scheduling decisions, pure and exactly testable: the micro-batcher (`batching`), early load
shedding (`shedding`), canary routing by request id (`routing`) and a model's circuit breaker
(`breaker`). No I/O and no clock: callers pass the time.

May import: the standard library only. Must not import: aiokafka, faust, clickhouse, torch,
or any other streams package.
"""
