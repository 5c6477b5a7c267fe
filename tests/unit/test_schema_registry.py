"""The registry client against a tiny in-process Confluent-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from schemas import (
    CONTROL_SUBJECT,
    REQUEST_SUBJECT,
    RESULT_SUBJECT,
    STATUS_SUBJECT,
    TOKEN_SUBJECT,
    load_catalog,
)
from streams.config import Settings
from streams.errors import SchemaRegistryError
from streams.wire.codec import RecordCodec, request_codec
from streams.wire.schema_registry import SchemaRegistryClient, fetch_into, registry_catalog


class FakeRegistry(BaseHTTPRequestHandler):
    """Assigns ids from 1000 up, one per distinct schema text, like Confluent's registry."""

    schemas: ClassVar[dict[int, str]] = {}
    subjects: ClassVar[dict[str, list[int]]] = {}
    auth: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        self.auth.append(self.headers.get("Authorization"))
        schema_id = int(self.path.rsplit("/", 1)[-1])
        if self.path.startswith("/schemas/ids/") and schema_id in self.schemas:
            self._reply(200, {"schema": self.schemas[schema_id]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def do_POST(self) -> None:
        if self.path == "/subjects/boom/versions":
            self._reply(500, {"error_code": 50001, "message": "store error"})
            return
        subject = self.path.split("/")[2]
        text = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        schema_id = next((i for i, s in self.schemas.items() if s == text), None)
        if schema_id is None:
            schema_id = 1000 + len(self.schemas)
            self.schemas[schema_id] = text
        self.subjects.setdefault(subject, []).append(schema_id)
        self._reply(200, {"id": schema_id})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    FakeRegistry.schemas, FakeRegistry.subjects, FakeRegistry.auth = {}, {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_registers_shipped_schemas_and_decodes_with_registry_ids(registry_url: str) -> None:
    client = SchemaRegistryClient(registry_url)
    catalog = registry_catalog(client)
    assert set(FakeRegistry.subjects) == {REQUEST_SUBJECT, RESULT_SUBJECT, TOKEN_SUBJECT,
                                          CONTROL_SUBJECT, STATUS_SUBJECT}
    codec = request_codec(catalog)
    assert codec.schema_id >= 1000
    record = {"request_id": "r", "model": "m", "task": "embed", "text": "t", "created_at": 1}
    assert codec.decode(codec.encode(record))["text"] == "t"
    assert registry_catalog(client).latest(REQUEST_SUBJECT).schema_id == codec.schema_id


def test_unknown_id_is_fetched_into_the_catalog(registry_url: str) -> None:
    client = SchemaRegistryClient(registry_url)
    writer_catalog = registry_catalog(client)  # another process registered these
    reader_catalog = registry_catalog(client)  # this worker, started before v1-redoc existed
    new_id = client.register(REQUEST_SUBJECT, {**_request_schema(), "doc": "v1 re-documented"})
    assert reader_catalog.by_id(new_id) is None
    added = fetch_into(reader_catalog, client, new_id)
    assert added.subject == REQUEST_SUBJECT
    payload = RecordCodec(writer_catalog, REQUEST_SUBJECT).encode(
        {"request_id": "r", "model": "m", "task": "embed", "text": "x", "created_at": 1}
    )
    assert request_codec(reader_catalog).decode(payload)["request_id"] == "r"


def test_errors_say_whether_retrying_helps(registry_url: str) -> None:
    client = SchemaRegistryClient(registry_url)
    with pytest.raises(SchemaRegistryError, match="HTTP 404") as missing:
        client.get_schema(7)
    assert not missing.value.retriable
    with pytest.raises(SchemaRegistryError, match="HTTP 500") as broken:
        client.register("boom", {"type": "string"})
    assert broken.value.retriable
    with pytest.raises(SchemaRegistryError) as down:
        SchemaRegistryClient("http://127.0.0.1:9", timeout_s=2).get_schema(1)
    assert down.value.retriable


def test_from_settings_and_basic_auth(registry_url: str) -> None:
    assert SchemaRegistryClient.from_settings(Settings()) is None
    settings = Settings(
        schema_registry_url=registry_url + "/",
        schema_registry_username="svc",
        schema_registry_password="s3cret",
    )
    client = SchemaRegistryClient.from_settings(settings)
    assert client is not None and client.url == registry_url
    with pytest.raises(SchemaRegistryError):
        client.get_schema(1)
    assert FakeRegistry.auth == ["Basic c3ZjOnMzY3JldA=="]  # base64("svc:s3cret")


def _request_schema() -> dict[str, Any]:
    return next(e for e in load_catalog() if e.subject == REQUEST_SUBJECT).load()
