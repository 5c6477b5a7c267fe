"""The compiled Avro writer must write exactly fastavro's bytes, and refuse what does not fit."""

from __future__ import annotations

import io
import math
import random
import struct
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import load_catalog
from streams.errors import EncodeError
from streams.wire.avro_writer import Unsupported, compile_writer
from streams.wire.codec import result_codec, token_codec

SCHEMAS = {f"{entry.subject} v{entry.version}": entry.load() for entry in load_catalog()}
UNFIT = (TypeError, ValueError, KeyError, AttributeError, OverflowError, struct.error)


def fastavro_bytes(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(schema, named_schemas={}), record)
    return out.getvalue()


def random_value(schema: Any, rng: random.Random, named: dict[str, Any]) -> Any:
    """A random value of `schema`, covering both union branches, empty and long containers,
    multi-byte varints, negative numbers and non-ASCII strings."""
    if isinstance(schema, list):
        return random_value(rng.choice(schema), rng, named)
    if isinstance(schema, str) and schema in named:
        return random_value(named[schema], rng, named)
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return None
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31), rng.randint(-9999, 9999)])
    if kind == "long":
        return rng.choice([0, 2**63 - 1, -(2**63), 1_795_617_916_844, rng.randint(-9999, 9999)])
    if kind == "float":
        return struct.unpack("<f", struct.pack("<f", rng.uniform(-1, 1)))[0]
    if kind == "double":
        return rng.choice([0.0, -1.5, math.pi, 1e300, rng.uniform(-1e6, 1e6)])
    if kind == "string":
        return rng.choice(["", "ok", "é ü ß 東京 🚀", "x" * rng.choice([63, 64, 200, 20_000])])
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 5, 300]))
    if kind == "enum":
        named[schema["name"]] = schema
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [random_value(schema["items"], rng, named) for _ in range(rng.choice([0, 1, 384]))]
    if kind == "map":
        return {f"k{i}é": random_value(schema["values"], rng, named)
                for i in range(rng.choice([0, 1, 70]))}
    if kind == "record":
        named[schema["name"]] = schema
        return {field["name"]: random_value(field["type"], rng, named)
                for field in schema["fields"]}
    raise AssertionError(kind)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_same_bytes_as_fastavro_for_generated_records(name: str) -> None:
    schema = SCHEMAS[name]
    encode = compile_writer(schema)
    rng = random.Random(name)
    for _ in range(300):
        record = random_value(schema, rng, {})
        assert encode(record) == fastavro_bytes(schema, record)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_missing_fields_take_their_defaults_like_fastavro(name: str) -> None:
    schema = SCHEMAS[name]
    record = random_value(schema, random.Random(1), {})
    for field in schema["fields"]:
        if "default" in field:
            del record[field["name"]]
    assert compile_writer(schema)(record) == fastavro_bytes(schema, record)


def test_written_bytes_read_back_with_fastavro() -> None:
    schema = SCHEMAS["dev.streamserve.InferenceResult v2"]
    record = random_value(schema, random.Random(2), {})
    body = compile_writer(schema)(record)
    parsed = parse_schema(schema, named_schemas={})
    assert schemaless_reader(io.BytesIO(body), parsed, None) == record


@pytest.mark.parametrize(("field", "value"), [
    ("request_id", None), ("request_id", 5), ("tokens_in", "3"), ("tokens_in", 2**31),
    ("tokens_in", 1.5), ("created_at", 2**63), ("status", "done"), ("embedding", ["a"]),
    ("embedding", 3), ("score", "high"), ("attributes", {"k": 1}), ("timings", None),
])
def test_values_that_do_not_fit_raise_encode_error(field: str, value: Any) -> None:
    codec = result_codec()
    record = random_value(SCHEMAS["dev.streamserve.InferenceResult v2"], random.Random(3), {})
    record[field] = value
    with pytest.raises(EncodeError, match="does not fit"):
        codec.encode(record)


def test_missing_required_field_raises() -> None:
    schema = SCHEMAS["dev.streamserve.TokenChunk v1"]
    record = random_value(schema, random.Random(4), {})
    del record["request_id"]
    with pytest.raises(UNFIT):
        compile_writer(schema)(record)
    with pytest.raises(EncodeError):
        token_codec().encode(record)


@pytest.mark.parametrize("field_type", [
    ["null", "string", "int"], ["string", "int"], {"type": "fixed", "name": "F", "size": 4},
    {"type": "int", "logicalType": "date"}, "Unknown",
])
def test_unsupported_schemas_are_refused_at_compile_time(field_type: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": field_type}]}
    with pytest.raises(Unsupported):
        compile_writer(schema)
