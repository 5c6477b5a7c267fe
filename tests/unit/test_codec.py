from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from schemas import REQUEST_SUBJECT, RESULT_SUBJECT, load_catalog
from streams.errors import DecodeError, EncodeError
from streams.wire.codec import RecordCodec, SchemaCatalog, request_codec, result_codec


def full_request(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "request_id": "req-ü-1",
        "model": "smollm2",
        "model_version": "135m-q4",
        "task": "generate",
        "text": None,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi 👋"},
        ],
        "labels": ["a", "b"],
        "parameters": {
            "max_new_tokens": 32,
            "temperature": 0.7,
            "top_p": 0.9,
            "stop": ["\n\n", "END"],
            "seed": 2**40,
        },
        "stream": True,
        "deadline": 1_700_000_005_000,
        "priority": -3,
        "reply_topic": "my.replies",
        "created_at": 1_700_000_000_000,
        "attributes": {"tenant": "acme", "trace": ""},
    }
    record.update(overrides)
    return record


def full_result(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "request_id": "req-1",
        "model": "minilm",
        "model_version": "v1",
        "status": "ok",
        "text": "hello",
        "embedding": [0.5, -1.25, 3.0],  # exactly representable in float32
        "label": "positive",
        "score": 0.875,
        "finish_reason": "length",
        "tokens_in": 7,
        "tokens_out": 9,
        "timings": {
            "kafka_wait_ms": 1.5,
            "queue_wait_ms": 2.0,
            "batch_wait_ms": 3.25,
            "inference_ms": 40.0,
            "total_ms": 47.0,
        },
        "batch_size": 8,
        "worker_id": "w-1",
        "error": {"code": "runner_failed", "message": "boom"},
        "created_at": 1_700_000_000_000,
        "completed_at": 1_700_000_000_047,
        "time_to_first_token_ms": 12.5,
        "attributes": {"k": "v"},
    }
    record.update(overrides)
    return record


def test_request_round_trips_every_field_kind() -> None:
    codec = request_codec()
    record = full_request()
    assert codec.decode(codec.encode(record)) == record
    embed = full_request(
        task="embed",
        text="some text",
        messages=[],
        model_version=None,
        deadline=None,
        reply_topic=None,
        attributes={},
        labels=[],
    )
    embed["parameters"] = dict.fromkeys(embed["parameters"])
    assert codec.decode(codec.encode(embed)) == embed


def test_result_round_trips_every_field_kind() -> None:
    codec = result_codec()
    for record in (
        full_result(),
        full_result(status="error", embedding=None, error=None, model_version=None, score=None),
    ):
        assert codec.decode(codec.encode(record)) == record


def test_missing_optional_fields_take_schema_defaults() -> None:
    codec = request_codec()
    minimal = {"request_id": "r", "model": "m", "task": "embed", "text": "t", "created_at": 5}
    decoded = codec.decode(codec.encode(minimal))
    assert decoded["messages"] == [] and decoded["labels"] == [] and decoded["attributes"] == {}
    assert decoded["parameters"] == dict.fromkeys(
        ["max_new_tokens", "temperature", "top_p", "stop", "seed"]
    )
    assert (decoded["stream"], decoded["priority"], decoded["deadline"]) == (False, 0, None)


def test_frame_is_magic_byte_and_big_endian_schema_id() -> None:
    ids = {e.subject: e.schema_id for e in load_catalog()}
    payload = request_codec().encode(full_request())
    assert payload[0] == 0
    assert int.from_bytes(payload[1:5], "big") == ids[REQUEST_SUBJECT]
    assert result_codec().encode(full_result())[1:5] == ids[RESULT_SUBJECT].to_bytes(4, "big")


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (b"", "empty", "0 bytes is too short"),
        (b"\x00\x00\x00", "empty", "3 bytes is too short"),
        (b"\x00\x00\x00\x00\x01", "empty", "5 bytes is too short"),
        (b"\x7b\x22json\x22: 1}", "bad_magic", "wrong magic byte 0x7b"),
        (b"\x00\x00\x00\x03\xe7\x02ab", "unknown_schema", "unknown schema id 999"),
    ],
)
def test_framing_errors(payload: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        request_codec().decode(payload)
    assert info.value.reason == reason
    assert fragment in str(info.value)
    assert not info.value.retriable


def test_result_on_requests_topic_is_wrong_subject() -> None:
    payload = result_codec().encode(full_result())
    with pytest.raises(
        DecodeError, match=r"is dev\.streamserve\.InferenceResult v2, expected a dev"
    ):
        request_codec().decode(payload)


@pytest.mark.parametrize("cut", [1, 10, 40])
def test_truncated_body_is_corrupt(cut: int) -> None:
    payload = request_codec().encode(full_request())
    with pytest.raises(DecodeError, match="corrupt Avro body") as info:
        request_codec().decode(payload[:-cut])
    assert info.value.reason == "corrupt"


def test_trailing_bytes_are_corrupt() -> None:
    payload = request_codec().encode(full_request())
    with pytest.raises(DecodeError, match="2 trailing bytes"):
        request_codec().decode(payload + b"\x00\x00")


def test_bit_flips_raise_only_decode_error() -> None:
    """Whatever fastavro raises on garbage must surface as DecodeError (to the DLQ)."""
    codec = request_codec()
    payload = codec.encode(full_request())
    rng = random.Random(7)
    corrupt = 0
    for _ in range(3000):
        mutated = bytearray(payload)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(5, len(mutated))] = rng.randrange(256)
        try:
            codec.decode(bytes(mutated))
        except DecodeError as exc:
            corrupt += exc.reason == "corrupt"
    assert corrupt > 0


def test_decode_many_keeps_order_and_isolates_failures() -> None:
    codec = request_codec()
    good = codec.encode(full_request())
    out = codec.decode_many([good, b"junk-junk", good])
    assert out[0] == full_request() and out[2] == full_request()
    assert isinstance(out[1], DecodeError) and out[1].reason == "bad_magic"
    assert codec.decode_many(codec.encode_many([full_request()] * 3)) == [full_request()] * 3


def test_record_that_does_not_fit_raises_encode_error() -> None:
    with pytest.raises(EncodeError):
        request_codec().encode({"request_id": "r", "model": "m", "task": "embed"})  # created_at
    with pytest.raises(EncodeError):
        request_codec().encode(full_request(task="translate"))


def catalog_with_request_v2() -> SchemaCatalog:
    """The shipped catalogue plus a compatible v2 of the request (new field with a default)."""
    catalog = SchemaCatalog.builtin()
    v1 = next(e for e in load_catalog() if e.subject == REQUEST_SUBJECT and e.version == 1)
    v2 = copy.deepcopy(v1.load())
    v2["fields"].append({"name": "tenant", "type": "string", "default": "shared"})
    catalog.add(101, v2, REQUEST_SUBJECT, 2)
    return catalog


def test_old_writer_version_decodes_into_current_reader() -> None:
    catalog = catalog_with_request_v2()
    old_writer = RecordCodec(catalog, REQUEST_SUBJECT, schema_id=1)
    current = request_codec(catalog)
    assert current.schema_id == 101
    decoded = current.decode(old_writer.encode(full_request()))
    assert decoded == {**full_request(), "tenant": "shared"}
    # ...and the current version round-trips too.
    assert current.decode(current.encode(decoded)) == decoded


def test_schema_added_by_id_alone_lands_in_its_subject_read_only() -> None:
    catalog = SchemaCatalog.builtin()
    v1 = next(e for e in load_catalog() if e.subject == RESULT_SUBJECT)
    added = catalog.add(42, json.dumps(v1.load()))  # as fetched from a registry by id
    assert (added.subject, added.version) == (RESULT_SUBJECT, 0)
    assert catalog.latest(RESULT_SUBJECT).schema_id == 3  # readable, never the written version
    v1_result = {k: v for k, v in full_result().items() if k != "time_to_first_token_ms"}
    payload = RecordCodec(catalog, RESULT_SUBJECT, schema_id=42).encode(v1_result)
    # A v1 record read as the current v2: the field v2 added takes its default.
    assert result_codec(catalog).decode(payload) == {**v1_result, "time_to_first_token_ms": None}
    with pytest.raises(ValueError, match="already belongs"):
        catalog.add(42, catalog.latest(REQUEST_SUBJECT).parsed)
    with pytest.raises(KeyError, match="no schema for subject"):
        SchemaCatalog().latest(RESULT_SUBJECT)
