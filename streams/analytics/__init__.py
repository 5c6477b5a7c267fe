"""The request log and what is computed from it: ClickHouse storage (embedded chDB or a server:
`storage`) and its migrations, the batched request-log sink (`sink/`), `streamserve stats`
(`stats`, `plots`) and capacity planning from measured throughput (`capacity/`).

May import: clickhouse-connect, chDB, matplotlib, `streams.config`, `streams.errors`.
Must not import: aiokafka, faust, torch, or the worker (the worker imports the sink).
"""
