"""Kafka plumbing shared by the worker, the client, the CLI and the tests: client options
(security, safe producer defaults: `options`), topic creation and description (`topics`),
broker reachability with one clear line when there is none (`broker_check`), and the local
Apache Kafka stack started from Maven Central's jars (`stack/`).

May import: aiokafka, `streams.config`, `streams.errors`, `streams.redaction`.
Must not import: faust, clickhouse, torch, or the worker.
"""
