"""Every published schema version must read data written with its predecessor (BACKWARD).

Consumers upgrade first: a worker on version N must decode records that clients still write
with version N-1. The check is Apache Avro's own reader/writer compatibility checker.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections import defaultdict
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import REQUEST_SUBJECT, RESULT_SUBJECT, CatalogEntry, load_catalog
from streams.wire.codec import SchemaCatalog


def by_subject() -> dict[str, list[CatalogEntry]]:
    subjects: dict[str, list[CatalogEntry]] = defaultdict(list)
    for entry in load_catalog():
        subjects[entry.subject].append(entry)
    return subjects


def incompatibilities(reader: dict[str, Any], writer: dict[str, Any]) -> list[str]:
    """Why `reader` cannot read what `writer` wrote; empty when it can."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        reader=avro.schema.parse(json.dumps(reader)), writer=avro.schema.parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return sorted(result.messages) or ["incompatible"]


def test_catalog_is_well_formed() -> None:
    entries = load_catalog()
    ids = [e.schema_id for e in entries]
    assert len(set(ids)) == len(ids), "schema ids are on the wire: never reuse one"
    assert all(0 < i < 2**31 for i in ids)
    assert {REQUEST_SUBJECT, RESULT_SUBJECT} <= set(by_subject())
    for subject, versions in by_subject().items():
        assert [e.version for e in versions] == list(range(1, len(versions) + 1)), subject
        for entry in versions:
            assert re.fullmatch(rf"[a-z_]+\.v{entry.version}\.avsc", entry.file)
            schema = entry.load()
            assert f"{schema['namespace']}.{schema['name']}" == subject
            fastavro.parse_schema(schema)  # both libraries accept it, defaults included
            avro.schema.parse(json.dumps(schema))


def test_codec_uses_the_catalog_ids() -> None:
    catalog = SchemaCatalog.builtin()
    for entry in load_catalog():
        registered = catalog.by_id(entry.schema_id)
        assert registered is not None
        assert (registered.subject, registered.version) == (entry.subject, entry.version)


def test_every_version_reads_its_predecessor() -> None:
    checked = 0
    for versions in by_subject().values():
        for older, newer in itertools.pairwise(versions):
            problems = incompatibilities(reader=newer.load(), writer=older.load())
            assert not problems, f"{newer.file} cannot read {older.file}: {problems}"
            checked += 1
    # Today each subject has one version; the loop starts checking as soon as a v2 lands.
    assert checked == sum(len(v) - 1 for v in by_subject().values())


def request_v1() -> dict[str, Any]:
    return next(e for e in by_subject()[REQUEST_SUBJECT] if e.version == 1).load()


def test_adding_a_field_with_a_default_is_compatible() -> None:
    v2 = copy.deepcopy(request_v1())
    v2["fields"].append({"name": "tenant", "type": ["null", "string"], "default": None})
    assert incompatibilities(reader=v2, writer=request_v1()) == []


def _without_default(schema: dict[str, Any]) -> dict[str, Any]:
    schema["fields"].append({"name": "tenant", "type": "string"})
    return schema


def _drop_enum_symbol(schema: dict[str, Any]) -> dict[str, Any]:
    task = next(f for f in schema["fields"] if f["name"] == "task")
    task["type"]["symbols"].remove("classify")
    return schema


def _retype_field(schema: dict[str, Any]) -> dict[str, Any]:
    created = next(f for f in schema["fields"] if f["name"] == "created_at")
    created["type"] = "int"  # a long no longer fits
    return schema


@pytest.mark.parametrize("change", [_without_default, _drop_enum_symbol, _retype_field])
def test_incompatible_change_is_reported(change: Any) -> None:
    v2 = change(copy.deepcopy(request_v1()))
    assert incompatibilities(reader=v2, writer=request_v1()) != []
