"""Records a hostile or careless producer sends: every kind the worker must survive.

Each case says what the worker must answer: a dead letter with one of `codes` (always), and a
non-ok result with that code when the request id is readable (`request_id`)."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.client.library import new_request
from streams.wire.codec import request_codec, result_codec

MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    kind: str
    key: bytes | None
    value: bytes | None
    codes: frozenset[str]
    request_id: str | None = None  # readable id: a rejected result is expected too


def _encode(record: dict[str, Any]) -> bytes:
    return request_codec().encode(record)


def _req(kind: str, model: str = "encoder", task: str = "embed", **fields: Any) -> dict[str, Any]:
    record = new_request(model, task, text="fine text", request_id=f"bad-{kind}")
    record.update(fields)
    return record


def _readable(kind: str, code: str, **fields: Any) -> Case:
    record = _req(kind, **fields)
    return Case(kind, record["request_id"].encode(), _encode(record), frozenset({code}),
                str(record["request_id"]))


def _bytes(kind: str, value: bytes | None, *codes: str, key: bytes | None = None) -> Case:
    return Case(kind, key if key is not None else f"raw-{kind}".encode(), value,
                frozenset(codes))


def _utf8_broken() -> bytes:
    good = _encode(_req("utf8", text="hello"))
    return good.replace(b"hello", b"\xff\xfe\xfd\xfc\xfb", 1)


def _generate(kind: str, code: str, **parameters: Any) -> Case:
    base = {"max_new_tokens": None, "temperature": None, "top_p": None, "stop": None,
            "seed": None}
    return _readable(kind, code, model="echo", task="generate",
                     parameters={**base, **parameters})


def hostile_cases(reply_prefix: str, requests_topic: str) -> list[Case]:
    now = int(time.time() * 1000)
    a_result = result_codec().encode({
        "request_id": "x", "model": "m", "model_version": None, "status": "ok", "text": None,
        "embedding": None, "label": None, "score": None, "finish_reason": None,
        "tokens_in": 0, "tokens_out": 0, "timings": dict.fromkeys(
            ["kafka_wait_ms", "queue_wait_ms", "batch_wait_ms", "inference_ms", "total_ms"],
            0.0), "batch_size": 0, "worker_id": "", "error": None, "created_at": now,
        "completed_at": now, "attributes": {}})
    header = b"\x00" + struct.pack(">I", 1)
    cases: list[Case] = [
        # --- framing and bytes ---
        _bytes("empty", b"", "empty"),
        _bytes("tombstone", None, "empty"),
        _bytes("bad-magic", b"\x07not avro at all", "bad_magic"),
        _bytes("unknown-schema", b"\x00" + struct.pack(">I", 999) + b"\x02x", "unknown_schema"),
        _bytes("truncated", header + b"\x02", "corrupt"),
        _bytes("garbage", header + bytes(range(256)) * 4, "corrupt"),
        _bytes("wrong-subject", a_result, "wrong_subject"),
        _bytes("broken-utf8", _utf8_broken(), "corrupt"),
        _bytes("three-mib", b"\x00" * (3 * MiB), "request_too_large"),
        # larger than the worker fetches per partition: its dead letter must be cut to fit
        _bytes("four-and-a-half-mib", b"\x01" * (4 * MiB + MiB // 2), "request_too_large"),
        _bytes("huge-key", b"\x07not avro", "bad_magic", key=b"k" * (512 * 1024)),
        # --- ids ---
        Case("blank-id", None, _encode(_req("blank-id", request_id="   ")),
             frozenset({"invalid_request_id"})),
        _readable("long-id", "invalid_request_id", request_id="i" * 129),
        _readable("huge-id", "invalid_request_id", request_id="h" * 300_000),
        # --- models and tasks ---
        _readable("unknown-model", "unknown_model", model="nope"),
        _readable("huge-model-name", "unknown_model", model="m" * 100_000),
        _readable("unknown-version", "unknown_model", model_version="v999"),
        _readable("task-not-served", "unknown_task", task="generate"),
        # --- input shape and size ---
        _readable("empty-text", "empty_input", text=""),
        _readable("blank-text", "empty_input", text=" \t\n "),
        _readable("text-and-messages", "invalid_input",
                  messages=[{"role": "user", "content": "hi"}]),
        _readable("messages-for-embed", "invalid_input", text=None,
                  messages=[{"role": "user", "content": "hi"}]),
        _readable("bad-role", "invalid_input", model="echo", task="generate", text=None,
                  messages=[{"role": "root", "content": "hi"}]),
        _readable("too-many-messages", "invalid_input", model="echo", task="generate",
                  text=None, messages=[{"role": "user", "content": "x"}] * 65),
        _readable("too-many-chars", "input_too_long", text="x" * 100_000),
        # just under the default 1 MiB: its dead letter (plus headers) must still be produced
        _readable("near-1mib-text", "input_too_long", text="y" * (MiB - 2048)),
        _readable("too-many-tokens", "input_too_long", text="w " * 70),
        # --- labels ---
        _readable("too-many-labels", "invalid_parameters", task="classify",
                  labels=[f"l{i}" for i in range(33)]),
        _readable("long-label", "invalid_parameters", task="classify", labels=["l" * 129]),
        _readable("duplicate-labels", "invalid_parameters", task="classify", labels=["a", "a"]),
        # --- generation parameters ---
        _generate("nan-temperature", "invalid_parameters", temperature=float("nan")),
        _generate("zero-top-p", "invalid_parameters", top_p=0.0),
        _generate("million-tokens", "invalid_parameters", max_new_tokens=10**6),
        _generate("five-stops", "invalid_parameters", stop=["a", "b", "c", "d", "e"]),
        _generate("long-stop", "invalid_parameters", stop=["s" * 65]),
        _generate("negative-seed", "invalid_parameters", seed=-1),
        # --- priority, deadline, attributes ---
        _readable("huge-priority", "invalid_parameters", priority=10**9),
        _readable("deadline-before-created", "invalid_parameters", deadline=now - 60_000,
                  created_at=now),
        _readable("deadline-in-ten-years", "invalid_parameters",
                  deadline=now + 10 * 365 * 86_400_000, created_at=now),
        _readable("many-attributes", "invalid_parameters",
                  attributes={f"k{i}": "v" for i in range(100)}),
        _readable("huge-attribute", "invalid_parameters", attributes={"k": "v" * 100_000}),
        # --- reply topics ---
        _readable("internal-reply-topic", "reply_topic_not_allowed",
                  reply_topic="__consumer_offsets"),
        _readable("requests-as-reply-topic", "reply_topic_not_allowed",
                  reply_topic=requests_topic),
        _readable("foreign-reply-topic", "reply_topic_not_allowed", reply_topic="evil.topic"),
        _readable("illegal-reply-topic", "reply_topic_not_allowed",
                  reply_topic=reply_prefix + "a/b"),
        _readable("missing-reply-topic", "reply_topic_unavailable",
                  reply_topic=reply_prefix + "does-not-exist"),
    ]
    return cases


def good_requests(count: int, reply_topic: str) -> list[dict[str, Any]]:
    """Valid requests, some with hostile-looking but valid content."""
    makers: list[Callable[[int], dict[str, Any]]] = [
        lambda i: new_request("encoder", "embed", text=f"document {i}", request_id=f"good-e{i}"),
        lambda i: new_request("echo", "generate", text=f"say {i} now", request_id=f"good-g{i}"),
        lambda i: new_request("encoder", "classify", text=f"is {i} ok", labels=["yes", "no"],
                              request_id=f"good-c{i}"),
        lambda i: new_request("encoder", "embed", text="\x00\x01 ctrl ☃ \u202e bidi",
                              request_id=f"good-u{i}"),
    ]
    requests = [makers[i % len(makers)](i) for i in range(count)]
    requests.append(new_request("encoder", "embed", text="to my own topic",
                                request_id="good-reply", reply_topic=reply_topic))
    return requests
