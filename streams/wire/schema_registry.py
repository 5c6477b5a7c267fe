"""A small Confluent-compatible schema-registry client (stdlib urllib), used only when
`settings.schema_registry_url` is set; without it the built-in catalogue's fixed ids are used.

With a registry, ids are the registry's: `registry_catalog()` registers every shipped version
(oldest first, so the registry's compatibility check sees them in order) and returns a
catalogue keyed by the ids it assigned. A record from a writer with a newer schema carries an
id we do not know: `fetch_into()` adds it. Calls block: run them off the event loop.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from schemas import CatalogEntry, load_catalog
from streams.config import Settings
from streams.errors import ConfigError, SchemaRegistryError
from streams.redaction import split_url_credentials
from streams.wire.codec import RegisteredSchema, SchemaCatalog

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryClient:
    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        # urllib cannot send `user:password@` of a URL (and its errors would quote it): the
        # URL's credentials become the basic-auth login, unless a login is given as well.
        split = split_url_credentials(url)
        if split.present:
            if username is not None or password is not None:
                raise ConfigError("the schema registry URL carries credentials and a username/"
                                  "password is set too: give them once")
            username, password = split.username or "", split.password
        self.url = split.url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE}
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"

    def __repr__(self) -> str:
        return f"SchemaRegistryClient({self.url!r})"  # the URL holds no credentials here

    @classmethod
    def from_settings(
        cls, settings: Settings, timeout_s: float = 10.0
    ) -> SchemaRegistryClient | None:
        if not settings.schema_registry_url:
            return None
        password = settings.schema_registry_password
        return cls(
            settings.schema_registry_url,
            settings.schema_registry_username,
            password.get_secret_value() if password else None,
            timeout_s,
        )

    def get_schema(self, schema_id: int) -> str:
        """GET /schemas/ids/{id}: the schema's JSON text (an Avro one: no `schemaType` or AVRO)."""
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        kind = answer.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is {kind}, not Avro", retriable=False)
        return str(answer["schema"])

    def register(self, subject: str, schema: dict[str, Any] | str) -> int:
        """POST /subjects/{subject}/versions: the id (existing one if already registered)."""
        text = schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"))
        body = {"schema": text}
        return int(self._call("POST", f"/subjects/{subject}/versions", body)["id"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=self._headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            # 4xx (unknown id, incompatible schema) will not change by retrying; 5xx may.
            detail = exc.read().decode(errors="replace")[:500]
            raise SchemaRegistryError(
                f"{method} {path}: HTTP {exc.code} {detail}", retriable=exc.code >= 500
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise SchemaRegistryError(f"{method} {path}: {exc}", retriable=True) from exc


def registry_catalog(
    client: SchemaRegistryClient, subject_for: Callable[[CatalogEntry], str] | None = None
) -> SchemaCatalog:
    """Register every shipped schema version and key the catalogue by the registry's ids.

    `subject_for` names the registry subject of an entry (default: the record's full name);
    the catalogue's own subjects stay the record names, which is what the codecs look up."""
    catalog = SchemaCatalog()
    for entry in load_catalog():
        schema = entry.load()
        subject = entry.subject if subject_for is None else subject_for(entry)
        catalog.add(client.register(subject, schema), schema, entry.subject, entry.version)
    return catalog


def fetch_into(
    catalog: SchemaCatalog, client: SchemaRegistryClient, schema_id: int
) -> RegisteredSchema:
    """Add the registry's schema `schema_id` to `catalog` (subject = its record's full name)."""
    return catalog.add(schema_id, client.get_schema(schema_id))
