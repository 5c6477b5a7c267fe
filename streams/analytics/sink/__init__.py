"""The request-log sink, by the contract quixstreams' sinks use (`add` a row, `flush`):
`batching.RequestLogSink` buffers rows from the event loop and inserts blocks on its own thread
with retries and a local `spool` for outages; `clickhouse` is the ClickHouse target it inserts
into (embedded chDB or a server); `request_log` is the row and its columns.

Must not import: aiokafka, faust, torch (rows come in through `add`, from the worker).
"""
