from __future__ import annotations

from typing import Any

import pytest

from models.base import ChatMessage, GenerationParameters, ModelInput, ModelOutput
from streams.errors import InvalidRequest
from streams.protocol.header import RequestHeader
from streams.protocol.requests import (
    ModelLimits,
    WorkItem,
    count_input_tokens,
    deadline_passed,
    unknown_model,
    validate_request,
)
from streams.protocol.results import (
    Timings,
    error_result,
    expired_result,
    ok_result,
    rejected_result,
)
from streams.wire.codec import request_codec, result_codec

NOW = 1_700_000_000_100.0
CREATED = int(NOW) - 50
LIMITS = ModelLimits(
    tasks=("generate", "embed", "classify"), max_new_tokens=256, max_input_tokens=512
)


def request(**overrides: Any) -> dict[str, Any]:
    """A decoded request as the codec returns it (all defaults present)."""
    minimal = {"request_id": "r-1", "model": "m", "task": "generate", "text": "hi",
               "created_at": CREATED}
    codec = request_codec()
    return {**codec.decode(codec.encode(minimal)), **overrides}


def params(**values: Any) -> dict[str, Any]:
    return {**dict.fromkeys(["max_new_tokens", "temperature", "top_p", "stop", "seed"]), **values}


def rejects(code: str, record: dict[str, Any], limits: ModelLimits = LIMITS) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate_request(record, limits, NOW)
    assert info.value.code == code, info.value.message
    assert not info.value.retriable
    return info.value


def test_generate_defaults() -> None:
    item = validate_request(request(), LIMITS, NOW)
    defaults = GenerationParameters(64, 0.0, 1.0, (), None)
    assert item.input == ModelInput("r-1", "hi", (), (), defaults)
    assert (item.priority, item.deadline_ms, item.stream) == (0, None, False)
    assert item.header.received_at_ms == NOW


def test_default_max_new_tokens_respects_a_smaller_model_cap() -> None:
    small = ModelLimits(("generate",), max_new_tokens=16, max_input_tokens=512)
    assert validate_request(request(), small, NOW).input.parameters.max_new_tokens == 16


def test_generate_with_chat_and_every_parameter() -> None:
    record = request(
        text=None,
        messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
        parameters=params(
            max_new_tokens=256, temperature=2.0, top_p=0.5, stop=["a" * 64] * 4, seed=0
        ),
        stream=True,
        priority=5,
        deadline=CREATED + 86_400_000,  # the furthest deadline the default caps allow
        model_version="v2",
    )
    item = validate_request(record, LIMITS, NOW)
    assert item.input.messages == (ChatMessage("system", "x"), ChatMessage("user", "hi"))
    assert item.input.parameters == GenerationParameters(256, 2.0, 0.5, ("a" * 64,) * 4, 0)
    assert (item.priority, item.stream, item.header.model_version) == (5, True, "v2")


def test_embed_ignores_generation_fields() -> None:
    record = request(task="embed", parameters=params(temperature=9.0), stream=True, labels=["x"])
    item = validate_request(record, LIMITS, NOW)
    assert item.input.parameters == GenerationParameters()
    assert (item.stream, item.input.labels) == (False, ())


def test_classify_labels_from_request_or_registry() -> None:
    record = request(task="classify", labels=["pos", "neg"])
    assert validate_request(record, LIMITS, NOW).input.labels == ("pos", "neg")
    with_defaults = ModelLimits(("classify",), 1, 512, labels=("a", "b"))
    assert validate_request(request(task="classify"), with_defaults, NOW).input.labels == ("a", "b")
    rejects("invalid_input", request(task="classify"))


@pytest.mark.parametrize(
    "labels", [["x"] * 2, [f"l{i}" for i in range(33)], [""], [" "], ["x" * 129]]
)
def test_bad_labels(labels: list[str]) -> None:
    rejects("invalid_parameters", request(task="classify", labels=labels))


@pytest.mark.parametrize("request_id", ["", "   ", "x" * 129])
def test_invalid_request_id(request_id: str) -> None:
    rejects("invalid_request_id", request(request_id=request_id))


def test_request_id_of_128_chars_is_fine() -> None:
    assert validate_request(request(request_id="x" * 128), LIMITS, NOW).request_id == "x" * 128


def test_unknown_task_and_task_the_model_does_not_serve() -> None:
    rejects("unknown_task", request(task="translate"))
    encoder_only = ModelLimits(("embed",), 1, 512)
    assert "does not serve generate" in rejects("unknown_task", request(), encoder_only).message


def test_unknown_model_error() -> None:
    error = unknown_model("gpt-9", "v3")
    assert (error.code, error.retriable) == ("unknown_model", False)
    assert "gpt-9 version v3" in error.message


@pytest.mark.parametrize(
    "overrides",
    [
        {"text": "", "messages": []},
        {"text": None, "messages": []},
        {"text": "  \n\t"},
        {"text": None, "messages": [{"role": "user", "content": " "}]},
        {"task": "embed", "text": ""},
    ],
)
def test_empty_input(overrides: dict[str, Any]) -> None:
    rejects("empty_input", request(**overrides))


@pytest.mark.parametrize(
    "overrides",
    [
        {"messages": [{"role": "user", "content": "also"}]},  # text and messages
        {"task": "embed", "text": None, "messages": [{"role": "user", "content": "x"}]},
        {
            "task": "classify",
            "labels": ["a"],
            "text": None,
            "messages": [{"role": "user", "content": "x"}],
        },
        {"text": None, "messages": [{"role": "tool", "content": "x"}]},
    ],
)
def test_invalid_input_shape(overrides: dict[str, Any]) -> None:
    rejects("invalid_input", request(**overrides))


@pytest.mark.parametrize(
    "values",
    [
        {"max_new_tokens": 0},
        {"max_new_tokens": 257},  # above the model's cap
        {"max_new_tokens": -1},
        {"temperature": -0.1},
        {"temperature": 2.01},
        {"temperature": float("nan")},
        {"top_p": 0.0},
        {"top_p": 1.01},
        {"top_p": float("nan")},
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stop": [""]},
        {"stop": ["x" * 65]},
        {"seed": -1},
    ],
)
def test_invalid_parameters(values: dict[str, Any]) -> None:
    rejects("invalid_parameters", request(parameters=params(**values)))


def test_input_token_limit() -> None:
    item = validate_request(request(text="one two three"), LIMITS, NOW).input

    def words(model_input: ModelInput) -> int:
        return len((model_input.text or "").split())

    assert count_input_tokens(item, words, max_input_tokens=3) == 3
    with pytest.raises(InvalidRequest) as info:
        count_input_tokens(item, words, max_input_tokens=2)
    assert info.value.code == "input_too_long" and "3 tokens" in info.value.message


def test_deadline_passed_is_expiry_not_an_error() -> None:
    item = validate_request(request(deadline=int(NOW)), LIMITS, NOW)  # validates fine
    assert item.is_expired(NOW) and not item.is_expired(NOW - 1)
    assert not deadline_passed(None, NOW)


# --- results ---------------------------------------------------------------------------------


def header() -> RequestHeader:
    return RequestHeader.of(request(created_at=1_000, attributes={"t": "1"}), received_at_ms=1_004)


def test_ok_result_fills_every_field_and_encodes() -> None:
    output = ModelOutput(text="yo", tokens_in=3, tokens_out=2, finish_reason="stop")
    result = ok_result(
        header(),
        output,
        model_version="v1",
        worker_id="w",
        completed_at_ms=1_050,
        timings=Timings(batch_wait_ms=5, queue_wait_ms=2, inference_ms=30),
        batch_size=4,
    )
    assert result["timings"] == {
        "kafka_wait_ms": 4.0,
        "queue_wait_ms": 2.0,
        "batch_wait_ms": 5.0,
        "inference_ms": 30.0,
        "total_ms": 50.0,
    }
    assert (result["status"], result["text"], result["tokens_out"]) == ("ok", "yo", 2)
    assert result["attributes"] == {"t": "1"} and result["error"] is None
    codec = result_codec()
    assert codec.decode(codec.encode(result)) == result


def test_every_status_has_the_same_fields_and_encodes() -> None:
    h = header()
    results = [
        ok_result(
            h,
            ModelOutput(embedding=[0.5]),
            model_version="v",
            worker_id="w",
            completed_at_ms=9,
            timings=Timings(),
            batch_size=1,
        ),
        error_result(
            h,
            "runner_failed",
            "CUDA OOM",
            worker_id="w",
            completed_at_ms=9,
            model_version="v",
            batch_size=8,
        ),
        rejected_result(h, unknown_model("m", None), worker_id="w", completed_at_ms=9),
        expired_result(h, worker_id="w", completed_at_ms=9),
    ]
    assert [r["status"] for r in results] == ["ok", "error", "rejected", "expired"]
    assert len({frozenset(r) for r in results}) == 1
    assert results[2]["error"] == {
        "code": "unknown_model",
        "message": "model 'm' is not served here",
    }
    assert results[2]["model_version"] is None and results[3]["batch_size"] == 0
    codec = result_codec()
    assert [codec.decode(b) for b in codec.encode_many(results)] == results


def test_header_of_a_broken_record_is_still_buildable() -> None:
    h = RequestHeader.of({"request_id": "", "model": "m"}, received_at_ms=5)
    assert (h.request_id, h.created_at_ms, h.attributes) == ("", 0, {})
    assert isinstance(validate_request(request(), LIMITS, NOW), WorkItem)
