"""The only code that turns bytes into records and back.

Wire format (Confluent framing): magic byte 0, 4-byte big-endian schema id, Avro binary body.
A reader looks the writer's schema up by the id in the frame, so a record written with an older
version of a subject decodes, by Avro schema resolution, into the current version's shape.

Everything expensive happens once: schemas are parsed when the catalogue is built and each
(writer id -> reader) pair is resolved on first use and cached, so the per-record work is one
fastavro call plus the frame checks.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas import (
    CONTROL_SUBJECT,
    REQUEST_SUBJECT,
    RESULT_SUBJECT,
    STATUS_SUBJECT,
    TOKEN_SUBJECT,
    load_catalog,
)
from streams.errors import DecodeError, EncodeError
from streams.wire.avro_writer import Unsupported, compile_writer

MAGIC = 0
HEADER_SIZE = 5

# What fastavro raises on a garbled body. Fuzzing (tests/unit/test_codec.py) shows EOFError,
# UnicodeDecodeError (a ValueError) and IndexError (bad enum/union index); the rest are
# defensive. Not `except Exception`: that would also hide our own bugs.
_CORRUPT = (EOFError, ValueError, IndexError, KeyError, TypeError, OverflowError, MemoryError)
# What fastavro (and the compiled writer) raise when a record does not fit its schema.
_UNFIT = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)


@dataclass(frozen=True)
class RegisteredSchema:
    schema_id: int
    subject: str
    version: int
    parsed: dict[str, Any]  # fastavro-parsed; never mutate


class SchemaCatalog:
    """Parsed schemas by id, and the newest version of each subject."""

    def __init__(self) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}
        self._latest: dict[str, RegisteredSchema] = {}

    @classmethod
    def builtin(cls) -> SchemaCatalog:
        """The catalogue shipped in the `schemas` package (schemas/catalog.json)."""
        catalog = cls()
        for entry in load_catalog():
            catalog.add(entry.schema_id, entry.load(), entry.subject, entry.version)
        return catalog

    def add(
        self,
        schema_id: int,
        schema: Mapping[str, Any] | str,
        subject: str | None = None,
        version: int | None = None,
    ) -> RegisteredSchema:
        """Register a schema (JSON text or parsed JSON) under `schema_id`.

        `subject` defaults to the record's full name, which is how subjects are named here, so a
        schema fetched from a registry by id alone lands in the right subject. Without a
        `version` it is readable but never becomes the subject's newest (written) version.
        """
        raw = json.loads(schema) if isinstance(schema, str) else dict(schema)
        # A fresh named-types table per schema: two subjects may both define e.g. `Task`.
        parsed = cast(dict[str, Any], parse_schema(raw, named_schemas={}))
        subject = subject or _full_name(raw)
        known = self._by_id.get(schema_id)
        if known is not None and known.subject != subject:
            raise ValueError(f"schema id {schema_id} already belongs to {known.subject}")
        registered = RegisteredSchema(schema_id, subject, version or 0, parsed)
        self._by_id[schema_id] = registered
        latest = self._latest.get(subject)
        if version is not None and (latest is None or version >= latest.version):
            self._latest[subject] = registered
        return registered

    def by_id(self, schema_id: int) -> RegisteredSchema | None:
        return self._by_id.get(schema_id)

    def latest(self, subject: str) -> RegisteredSchema:
        try:
            return self._latest[subject]
        except KeyError:
            raise KeyError(f"no schema for subject {subject!r}") from None


def _compiled_or_none(schema: dict[str, Any]) -> Callable[[Mapping[str, Any]], bytes] | None:
    """The compiled writer for `schema` (same bytes as fastavro, several times faster), or
    None when it uses a feature the compiler leaves to fastavro."""
    try:
        return compile_writer(schema)
    except Unsupported:
        return None


def _full_name(schema: Mapping[str, Any]) -> str:
    name = str(schema["name"])
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


class RecordCodec:
    """Encode/decode the records of one subject. Writes the newest version unless told which."""

    def __init__(self, catalog: SchemaCatalog, subject: str, schema_id: int | None = None) -> None:
        writer = catalog.latest(subject) if schema_id is None else catalog.by_id(schema_id)
        if writer is None or writer.subject != subject:
            raise ValueError(f"schema id {schema_id} is not a version of {subject}")
        self.subject = subject
        self.schema_id = writer.schema_id
        self._catalog = catalog
        self._reader = catalog.latest(subject)  # decoded records always have the newest shape
        self._writer = writer.parsed
        self._header = bytes([MAGIC]) + writer.schema_id.to_bytes(4, "big")
        self._compiled = _compiled_or_none(writer.parsed)
        # writer id -> (writer schema, reader schema or None when they are the same)
        self._resolved: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}

    def encode(self, record: Mapping[str, Any]) -> bytes:
        if self._compiled is not None:  # the hot path: results, token chunks
            try:
                return self._header + self._compiled(record)
            except _UNFIT as exc:
                raise EncodeError(f"record does not fit {self.subject}: {exc!r}") from exc
        out = BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self._writer, record)
        except _UNFIT as exc:
            raise EncodeError(f"record does not fit {self.subject}: {exc!r}") from exc
        return out.getvalue()

    def decode(self, payload: bytes) -> dict[str, Any]:
        if len(payload) <= HEADER_SIZE:
            raise DecodeError(
                "empty",
                f"payload of {len(payload)} bytes is too short: a framed record needs the "
                f"{HEADER_SIZE}-byte header (magic byte + schema id) and a body",
            )
        if payload[0] != MAGIC:
            raise DecodeError(
                "bad_magic",
                f"wrong magic byte {payload[0]:#04x} (expected {MAGIC:#04x}): "
                "not Confluent-framed Avro",
            )
        schema_id = int.from_bytes(payload[1:HEADER_SIZE], "big")
        schemas = self._resolved.get(schema_id) or self._resolve(schema_id)
        body = BytesIO(payload)
        body.seek(HEADER_SIZE)
        try:
            record = cast(dict[str, Any], schemaless_reader(body, schemas[0], schemas[1]))
        except _CORRUPT as exc:
            raise DecodeError(
                "corrupt", f"corrupt Avro body for schema id {schema_id}: {exc!r}"
            ) from exc
        if body.tell() != len(payload):
            raise DecodeError(
                "corrupt",
                f"corrupt Avro body for schema id {schema_id}: "
                f"{len(payload) - body.tell()} trailing bytes",
            )
        return record

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        encode = self.encode
        return [encode(record) for record in records]

    def decode_many(self, payloads: Sequence[bytes]) -> list[dict[str, Any] | DecodeError]:
        """One entry per payload, in order: the record, or the DecodeError it raised.

        One bad payload must not sink its batch (it goes to the DLQ, the rest are served).
        """
        decoded: list[dict[str, Any] | DecodeError] = []
        decode = self.decode
        for payload in payloads:
            try:
                decoded.append(decode(payload))
            except DecodeError as exc:
                decoded.append(exc)
        return decoded

    def _resolve(self, schema_id: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        writer = self._catalog.by_id(schema_id)
        if writer is None:
            raise DecodeError("unknown_schema", f"unknown schema id {schema_id}")
        if writer.subject != self.subject:
            raise DecodeError(
                "wrong_subject",
                f"schema id {schema_id} is {writer.subject} v{writer.version}, "
                f"expected a {self.subject}",
            )
        reader = None if writer.schema_id == self._reader.schema_id else self._reader.parsed
        self._resolved[schema_id] = (writer.parsed, reader)
        return writer.parsed, reader


@cache
def builtin_catalog() -> SchemaCatalog:
    return SchemaCatalog.builtin()


def request_codec(catalog: SchemaCatalog | None = None) -> RecordCodec:
    return RecordCodec(catalog or builtin_catalog(), REQUEST_SUBJECT)


def result_codec(catalog: SchemaCatalog | None = None) -> RecordCodec:
    return RecordCodec(catalog or builtin_catalog(), RESULT_SUBJECT)


def token_codec(catalog: SchemaCatalog | None = None) -> RecordCodec:
    return RecordCodec(catalog or builtin_catalog(), TOKEN_SUBJECT)


def control_codec(catalog: SchemaCatalog | None = None) -> RecordCodec:
    return RecordCodec(catalog or builtin_catalog(), CONTROL_SUBJECT)


def status_codec(catalog: SchemaCatalog | None = None) -> RecordCodec:
    return RecordCodec(catalog or builtin_catalog(), STATUS_SUBJECT)
