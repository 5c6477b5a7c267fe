"""The schema catalogue of a worker or client that has a schema registry.

With `STREAMSERVE_SCHEMA_REGISTRY_URL` set, `RegistrySchemas.open` registers every shipped
schema version (schemas/catalog.json, oldest first) under the configured subject naming
strategy and keys a `SchemaCatalog` by the ids the registry assigned, so what we write carries
the registry's ids and any Confluent deserializer can read it. Without a URL it returns None and
the built-in catalogue (fixed ids) is used, as before.

A producer with a newer compatible schema sends an id we have not seen. Decoding stays
synchronous (it is the hot path, one dict lookup per record more here): before decoding, the
caller asks `pending(payload)`. It answers None for a known id (or a malformed frame, which the
codec rejects with its usual reason); for an unknown id it gives an awaitable that fetches the
schema in a worker thread, with a bounded timeout per call and a bounded total retry budget:
the admission of that record waits (records behind it keep their order) while the event loop,
heartbeats, running batches and publishing go on. One fetch per id however many records wait;
a fetched schema is kept for good (registry ids never change meaning); an id the registry does
not know, or one that is not an Avro record, is remembered for a while, so hostile ids cost one
call each, not one per record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastavro.schema import SchemaParseException

from schemas import (
    CONTROL_SUBJECT,
    REQUEST_SUBJECT,
    RESULT_SUBJECT,
    STATUS_SUBJECT,
    TOKEN_SUBJECT,
    CatalogEntry,
)
from streams.config import Settings
from streams.errors import SchemaRegistryError
from streams.wire.codec import (
    HEADER_SIZE,
    MAGIC,
    RecordCodec,
    SchemaCatalog,
    request_codec,
    result_codec,
    token_codec,
)
from streams.wire.schema_registry import SchemaRegistryClient, registry_catalog

logger = logging.getLogger(__name__)

# Not a record schema we can read: bad JSON, a primitive or union, an unknown type, no name.
_UNREADABLE = (ValueError, KeyError, TypeError, SchemaParseException)
_MAX_REFUSED = 4096  # refused ids remembered at once


def subject_name(strategy: str, topic: str, record_name: str) -> str:
    """The registry subject of a record on `topic`, as Confluent's strategies name it."""
    if strategy == "TopicNameStrategy":
        return f"{topic}-value"
    if strategy == "RecordNameStrategy":
        return record_name
    if strategy == "TopicRecordNameStrategy":
        return f"{topic}-{record_name}"
    raise ValueError(f"unknown subject naming strategy {strategy!r}")


def subject_namer(settings: Settings) -> Callable[[CatalogEntry], str]:
    """Registry subject of each shipped entry: requests, results, token chunks and the
    control plane's records each on their configured topic (results on reply topics share
    the results topic's subject)."""
    topics = {REQUEST_SUBJECT: settings.requests_topic, RESULT_SUBJECT: settings.results_topic,
              TOKEN_SUBJECT: settings.tokens_topic, CONTROL_SUBJECT: settings.control_topic,
              STATUS_SUBJECT: settings.control_status_topic}
    strategy = settings.schema_registry_subject_strategy

    def name(entry: CatalogEntry) -> str:
        return subject_name(strategy, topics[entry.subject], entry.subject)

    return name


@dataclass(frozen=True)
class RegistryCodecs:
    request: RecordCodec
    result: RecordCodec
    token: RecordCodec


@dataclass(frozen=True)
class FetchPolicy:
    call_timeout_s: float = 3.0  # one HTTP call
    budget_s: float = 15.0  # all retries of one id while the registry is unreachable
    unknown_ttl_s: float = 60.0  # an id the registry refused (404, not Avro) is not asked again
    unreachable_ttl_s: float = 5.0  # after the budget ran out: fail fast for a while


class RegistrySchemas:
    """A catalogue keyed by the registry's ids that learns unknown writer ids on demand."""

    def __init__(self, catalog: SchemaCatalog, client: SchemaRegistryClient,
                 policy: FetchPolicy = FetchPolicy(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.catalog = catalog
        self.policy = policy
        self.fetches = 0  # HTTP calls made for unknown ids (tests and logs read it)
        self._client = client
        self._clock = clock
        self._learning: dict[int, asyncio.Task[bool]] = {}
        self._refused_until: dict[int, float] = {}

    @classmethod
    async def open(cls, settings: Settings,
                   policy: FetchPolicy = FetchPolicy()) -> RegistrySchemas | None:
        """Register the shipped versions (off the event loop); None without a registry URL.

        Raises `SchemaRegistryError` when the registry is unreachable (retriable) or refuses a
        shipped version, e.g. as incompatible with what its subject already holds."""
        client = SchemaRegistryClient.from_settings(settings, timeout_s=policy.call_timeout_s)
        if client is None:
            return None
        catalog = await asyncio.to_thread(registry_catalog, client, subject_namer(settings))
        return cls(catalog, client, policy)

    def codecs(self) -> RegistryCodecs:
        """Codecs that write the newest shipped versions with the registry's ids."""
        return RegistryCodecs(RecordCodec(self.catalog, REQUEST_SUBJECT),
                              RecordCodec(self.catalog, RESULT_SUBJECT),
                              RecordCodec(self.catalog, TOKEN_SUBJECT))

    def pending(self, payload: bytes) -> Awaitable[bool] | None:
        """None when `payload` can be decoded now; else an awaitable learning its writer id
        (True once known). A malformed frame is None too: the codec says what is wrong."""
        if len(payload) <= HEADER_SIZE or payload[0] != MAGIC:
            return None
        schema_id = int.from_bytes(payload[1:HEADER_SIZE], "big")
        if self.catalog.by_id(schema_id) is not None:
            return None
        return self.learn(schema_id)

    async def decode(self, codec: RecordCodec, payload: bytes) -> dict[str, Any]:
        """`codec.decode(payload)` after learning its writer id if needed (off the hot path:
        a client reading its results)."""
        waiting = self.pending(payload)
        if waiting is not None:
            await waiting
        return codec.decode(payload)

    async def learn(self, schema_id: int) -> bool:
        """Fetch `schema_id` into the catalogue; False when the registry cannot give it."""
        if self.catalog.by_id(schema_id) is not None:
            return True
        if self._refused_until.get(schema_id, 0.0) > self._clock():
            return False
        task = self._learning.get(schema_id)
        if task is None:
            task = asyncio.create_task(self._fetch(schema_id), name=f"schema-{schema_id}")
            self._learning[schema_id] = task
            task.add_done_callback(lambda _: self._learning.pop(schema_id, None))
        # A waiter cancelled (its partition revoked) must not cancel the fetch others await.
        return await asyncio.shield(task)

    async def _fetch(self, schema_id: int) -> bool:
        deadline = self._clock() + self.policy.budget_s
        delay = 0.25
        while True:
            self.fetches += 1
            try:
                text = await asyncio.to_thread(self._client.get_schema, schema_id)
                added = self.catalog.add(schema_id, text)
                logger.info("learned schema id %d (%s) from the registry", schema_id,
                            added.subject)
                return True
            except SchemaRegistryError as exc:
                if exc.retriable and self._clock() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                ttl = self.policy.unreachable_ttl_s if exc.retriable else self.policy.unknown_ttl_s
                return self._refuse(schema_id, ttl, exc)
            except _UNREADABLE as exc:
                return self._refuse(schema_id, self.policy.unknown_ttl_s, exc)

    def _refuse(self, schema_id: int, ttl_s: float, why: BaseException) -> bool:
        now = self._clock()
        if len(self._refused_until) >= _MAX_REFUSED:  # a flood of made-up ids: forget old ones
            self._refused_until = {i: t for i, t in self._refused_until.items() if t > now}
            while len(self._refused_until) >= _MAX_REFUSED:
                del self._refused_until[next(iter(self._refused_until))]
        self._refused_until[schema_id] = now + ttl_s
        logger.warning("schema id %d is not readable from the registry (%s); records with it are "
                       "rejected as unknown_schema for %.0fs", schema_id, why, ttl_s)
        return False


async def open_codecs(settings: Settings) -> tuple[RegistryCodecs, RegistrySchemas | None]:
    """The codecs a worker or client starts with: the registry's when a URL is set (and the
    catalogue that learns new writer ids), else the built-in catalogue's, exactly as before."""
    schemas = await RegistrySchemas.open(settings)
    if schemas is None:
        return RegistryCodecs(request_codec(), result_codec(), token_codec()), None
    return schemas.codecs(), schemas
