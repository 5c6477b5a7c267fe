"""Bytes to records and back: the Confluent framing (magic byte + schema id), Avro decoding
(fastavro) and encoding (a writer compiled from each schema, fastavro as the fallback), and the
Confluent-compatible schema registry client. The schemas themselves live in `schemas/`.

May import: the standard library, fastavro, avro, `schemas`, `streams.errors`.
Must not import: aiokafka, faust, clickhouse, torch, transformers, or other streams packages.
"""
