"""Avro schemas of every record on the wire: the single source of truth.

`catalog.json` lists each published version of each subject with its fixed schema id (ids are on
the wire in every message, so they never change and are never reused). The subject is the
record's full name (Confluent's RecordNameStrategy), which keeps subjects independent of the
configurable topic names. Files are package data, found through `importlib.resources` so this
works from a wheel as well as from a checkout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

REQUEST_SUBJECT = "dev.streamserve.InferenceRequest"
RESULT_SUBJECT = "dev.streamserve.InferenceResult"
TOKEN_SUBJECT = "dev.streamserve.TokenChunk"
CONTROL_SUBJECT = "dev.streamserve.ModelControl"
STATUS_SUBJECT = "dev.streamserve.ControlStatus"


@dataclass(frozen=True)
class CatalogEntry:
    subject: str
    version: int
    schema_id: int
    file: str

    def load(self) -> dict[str, Any]:
        """The schema as parsed JSON (not yet parsed by fastavro or avro)."""
        loaded: dict[str, Any] = json.loads(schema_file(self.file).read_text(encoding="utf-8"))
        return loaded


def schema_file(name: str) -> Traversable:
    """The packaged file `name` (e.g. 'inference_request.v1.avsc')."""
    path = resources.files(__name__) / name
    if not path.is_file():
        raise FileNotFoundError(f"no schema file {name!r} in package {__name__}")
    return path


def load_catalog() -> list[CatalogEntry]:
    """Every entry of catalog.json, ordered by subject then version."""
    raw = json.loads(schema_file("catalog.json").read_text(encoding="utf-8"))
    entries = [
        CatalogEntry(e["subject"], int(e["version"]), int(e["id"]), e["file"])
        for e in raw["schemas"]
    ]
    return sorted(entries, key=lambda e: (e.subject, e.version))
