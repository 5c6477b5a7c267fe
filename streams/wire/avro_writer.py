"""A compiled Avro binary writer for the records the worker publishes on its hot path.

Why not fastavro's `schemaless_writer` alone: profiled on the worker (bench/README.md), it
costs ≈37 µs for a result with a 16-float embedding and ≈208 µs with MiniLM's 384 floats,
because for every union it validates the value against each branch, element by element for
an `array<float>`. Here the schema is turned once into one small function per field; a union of
null and one other type picks its branch by `is None`, and an array of floats or doubles is a
single `struct.pack`. The bytes are identical to fastavro's (tests/unit/test_avro_writer.py
compares them on generated records); a schema using anything outside the supported subset is
refused at compile time with `Unsupported`, and the codec keeps fastavro for it.

Supported: null, boolean, int, long, float, double, bytes, string, enum, record, array, map,
and unions of "null" with one other type. A value that does not fit raises `TypeError`,
`ValueError`, `KeyError`, `AttributeError`, `OverflowError` or `struct.error`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from typing import Any, cast

Write = Callable[[bytearray, Any], None]

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_PACK_FLOAT = struct.Struct("<f").pack
_PACK_DOUBLE = struct.Struct("<d").pack
_FLOAT_ITEMS = {"float": "f", "double": "d"}


class Unsupported(ValueError):
    """The schema uses a feature this writer does not compile (use fastavro for it)."""


def _varint(out: bytearray, value: int) -> None:
    """Zig-zag then base-128 varint, as Avro writes int and long."""
    value = (value << 1) ^ (value >> 63)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _write_int(out: bytearray, value: Any) -> None:
    if not _INT_MIN <= value <= _INT_MAX or isinstance(value, float):
        raise ValueError(f"{value!r} is not an Avro int")
    _varint(out, value)


def _write_long(out: bytearray, value: Any) -> None:
    if not _LONG_MIN <= value <= _LONG_MAX or isinstance(value, float):
        raise ValueError(f"{value!r} is not an Avro long")
    _varint(out, value)


def _write_string(out: bytearray, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    raw = value.encode()
    _varint(out, len(raw))
    out += raw


def _write_bytes(out: bytearray, value: Any) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{type(value).__name__} is not bytes")
    raw = bytes(value)
    _varint(out, len(raw))
    out += raw


def _write_boolean(out: bytearray, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not a boolean")
    out.append(1 if value else 0)


def _write_float(out: bytearray, value: Any) -> None:
    out += _PACK_FLOAT(value)


def _write_double(out: bytearray, value: Any) -> None:
    out += _PACK_DOUBLE(value)


def _write_null(out: bytearray, value: Any) -> None:
    if value is not None:
        raise TypeError(f"{value!r} is not null")


_PRIMITIVES: dict[str, Write] = {
    "null": _write_null, "boolean": _write_boolean, "int": _write_int, "long": _write_long,
    "float": _write_float, "double": _write_double, "bytes": _write_bytes,
    "string": _write_string,
}


def compile_writer(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bytes]:
    """`schema` (a record, as JSON or fastavro-parsed) → a function record → Avro body bytes."""
    if schema.get("type") != "record":
        raise Unsupported("only record schemas are compiled")
    write = _Compiler().compile(schema)

    def encode(record: Mapping[str, Any]) -> bytes:
        out = bytearray()
        write(out, record)
        return bytes(out)

    return encode


class _Compiler:
    def __init__(self) -> None:
        self._named: dict[str, Write] = {}

    def compile(self, schema: Any) -> Write:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            if schema in self._named:
                return self._named[schema]
            raise Unsupported(f"unknown type {schema!r}")
        if isinstance(schema, list):
            return self._union(schema)
        kind = schema.get("type")
        if schema.get("logicalType") is not None:
            raise Unsupported(f"logical type {schema['logicalType']!r}")
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if kind == "record":
            return self._record(schema)
        if kind == "enum":
            return self._enum(schema)
        if kind == "array":
            return self._array(schema["items"])
        if kind == "map":
            return self._map(schema["values"])
        raise Unsupported(f"type {kind!r}")

    def _record(self, schema: Mapping[str, Any]) -> Write:
        """Straight-line code for the record's fields (generated once; a loop over per-field
        closures costs ≈2× more per record), with nested complex types as closures. Only
        repr()-quoted field names enter the source; defaults and writers are passed in."""
        namespace: dict[str, Any] = {"varint": _varint, "write_int": _write_int,
                                     "write_long": _write_long, "pack_f": _PACK_FLOAT,
                                     "pack_d": _PACK_DOUBLE}
        lines = ["def write_record(out, record):", "    get = record.get"]
        for i, field in enumerate(schema["fields"]):
            if "default" in field:
                namespace[f"default_{i}"] = field["default"]
                lines.append(f"    v = get({field['name']!r}, default_{i})")
            else:
                lines.append(f"    v = record[{field['name']!r}]")
            lines += ["    " + line for line in self._inline(field["type"], namespace)]
        exec(compile("\n".join(lines), f"<avro writer {schema['name']}>", "exec"), namespace)
        write_record = cast(Write, namespace["write_record"])
        self._named[schema["name"]] = write_record  # a recursive record is Unsupported
        return write_record

    def _inline(self, schema: Any, namespace: dict[str, Any]) -> list[str]:
        """Statements writing the value `v` of type `schema` to `out`."""
        kind = schema if isinstance(schema, str) else None
        if kind == "string":
            return ["b = v.encode()", "n = len(b)",
                    "if n < 64:", "    out.append(n << 1)", "else:", "    varint(out, n)",
                    "out += b"]
        if kind in ("int", "long"):
            return ["if type(v) is int and 0 <= v < 64:", "    out.append(v << 1)",
                    "else:", f"    write_{kind}(out, v)"]
        if kind == "double":
            return ["out += pack_d(v)"]
        if kind == "float":
            return ["out += pack_f(v)"]
        if isinstance(schema, list) and len(schema) == 2 and "null" in schema:
            other = schema[1 - schema.index("null")]
            null_tag, other_tag = schema.index("null") << 1, (1 - schema.index("null")) << 1
            return (["if v is None:", f"    out.append({null_tag})", "else:",
                     f"    out.append({other_tag})"]
                    + ["    " + line for line in self._inline(other, namespace)])
        if isinstance(schema, list):
            raise Unsupported("only unions of null and one other type are compiled")
        name = f"write_{len(namespace)}"  # unique: the namespace only grows
        namespace[name] = self.compile(schema)
        return [f"{name}(out, v)"]

    def _enum(self, schema: Mapping[str, Any]) -> Write:
        index = {symbol: i for i, symbol in enumerate(schema["symbols"])}

        def write_enum(out: bytearray, value: Any) -> None:
            try:
                _varint(out, index[value])
            except KeyError:
                raise ValueError(f"{value!r} is not a symbol of {schema['name']}") from None

        self._named[schema["name"]] = write_enum
        return write_enum

    def _union(self, branches: list[Any]) -> Write:
        if len(branches) != 2 or "null" not in branches:
            raise Unsupported("only unions of null and one other type are compiled")
        null_index = branches.index("null")
        other_index = 1 - null_index
        write_other = self.compile(branches[other_index])
        null_tag, other_tag = bytes([null_index << 1]), bytes([other_index << 1])

        def write_optional(out: bytearray, value: Any) -> None:
            if value is None:
                out += null_tag
            else:
                out += other_tag
                write_other(out, value)

        return write_optional

    def _array(self, items: Any) -> Write:
        code = _FLOAT_ITEMS.get(items) if isinstance(items, str) else None
        if code is not None:
            def write_numbers(out: bytearray, values: Any) -> None:
                count = len(values)
                if count:
                    _varint(out, count)
                    out += struct.pack(f"<{count}{code}", *values)
                out.append(0)

            return write_numbers
        write_item = self.compile(items)

        def write_array(out: bytearray, values: Any) -> None:
            if len(values):
                _varint(out, len(values))
                for value in values:
                    write_item(out, value)
            out.append(0)

        return write_array

    def _map(self, values: Any) -> Write:
        write_value = self.compile(values)

        def write_map(out: bytearray, mapping: Any) -> None:
            if len(mapping):
                _varint(out, len(mapping))
                for key, value in mapping.items():
                    _write_string(out, key)
                    write_value(out, value)
            out.append(0)

        return write_map
