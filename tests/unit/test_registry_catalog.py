"""Subject naming and the on-demand fetch policy, without a registry (a closed port)."""

from __future__ import annotations

import time

import pytest

from schemas import (
    CONTROL_SUBJECT,
    REQUEST_SUBJECT,
    RESULT_SUBJECT,
    STATUS_SUBJECT,
    TOKEN_SUBJECT,
    load_catalog,
)
from streams.config import Settings, load_settings
from streams.errors import ConfigError
from streams.kafka.stack.broker import free_port
from streams.wire.codec import SchemaCatalog
from streams.wire.registry_catalog import (
    FetchPolicy,
    RegistrySchemas,
    open_codecs,
    subject_name,
    subject_namer,
)
from streams.wire.schema_registry import SchemaRegistryClient


def test_subject_names_follow_confluents_strategies() -> None:
    assert subject_name("TopicNameStrategy", "in", REQUEST_SUBJECT) == "in-value"
    assert subject_name("RecordNameStrategy", "in", REQUEST_SUBJECT) == REQUEST_SUBJECT
    assert subject_name("TopicRecordNameStrategy", "in", REQUEST_SUBJECT) == f"in-{REQUEST_SUBJECT}"
    with pytest.raises(ValueError, match="unknown subject naming strategy"):
        subject_name("TopicStrategy", "in", REQUEST_SUBJECT)


def test_each_record_is_named_after_its_own_topic() -> None:
    name = subject_namer(Settings(requests_topic="q", results_topic="r", tokens_topic="t",
                                  control_topic="c", control_status_topic="s"))
    by_record = {entry.subject: name(entry) for entry in load_catalog()}
    assert by_record == {REQUEST_SUBJECT: "q-value", RESULT_SUBJECT: "r-value",
                         TOKEN_SUBJECT: "t-value", CONTROL_SUBJECT: "c-value",
                         STATUS_SUBJECT: "s-value"}


def test_strategy_setting_is_validated() -> None:
    assert Settings().schema_registry_subject_strategy == "TopicNameStrategy"
    with pytest.raises(ConfigError, match="schema_registry_subject_strategy"):
        load_settings(schema_registry_subject_strategy="ByTopic")


async def test_no_url_keeps_the_builtin_catalogue() -> None:
    assert await RegistrySchemas.open(Settings()) is None
    codecs, schemas = await open_codecs(Settings())
    assert schemas is None
    builtin = SchemaCatalog.builtin()
    assert [codecs.request.schema_id, codecs.result.schema_id, codecs.token.schema_id] == [
        builtin.latest(s).schema_id for s in (REQUEST_SUBJECT, RESULT_SUBJECT, TOKEN_SUBJECT)]


def _offline(policy: FetchPolicy, clock: list[float]) -> RegistrySchemas:
    client = SchemaRegistryClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.5)
    return RegistrySchemas(SchemaCatalog.builtin(), client, policy,
                           clock=lambda: time.monotonic() + clock[0])


def test_known_ids_and_malformed_frames_never_wait() -> None:
    schemas = _offline(FetchPolicy(), [0.0])
    known = b"\x00\x00\x00\x00\x01" + b"\x02r"
    for payload in (known, b"", b"\x00\x00\x00", b"\x07\x00\x00\x00\x09body"):
        assert schemas.pending(payload) is None
    assert schemas.fetches == 0


async def test_unreachable_registry_is_retried_within_budget_then_remembered() -> None:
    offset = [0.0]
    schemas = _offline(FetchPolicy(budget_s=1.0, unreachable_ttl_s=30.0), offset)
    payload = b"\x00\x00\x00\x04\x00" + b"\x02x"  # id 1024: not in the built-in catalogue
    waiting = schemas.pending(payload)
    assert waiting is not None
    assert await waiting is False
    tries = schemas.fetches
    assert tries >= 2  # retried while the budget lasted
    assert await schemas.learn(1024) is False and schemas.fetches == tries  # fails fast now
    offset[0] = 31.0  # the memory of the failure has expired: ask again
    assert await schemas.learn(1024) is False and schemas.fetches > tries
