"""The control plane's pure rules: what a worker refuses, how the CLI edits a model's state,
the Avro round trip, and a paused model's requests."""

from __future__ import annotations

import math

import pytest

from models.fake import FakeRunner, fake_spec
from streams.control.state import (
    ControlCommand,
    ControlRejected,
    ModelState,
    bootstrap_state,
    check,
    edit,
)
from streams.errors import InvalidRequest
from streams.wire.codec import control_codec
from streams.worker.served import ServedModel, ServedModels

KNOWN = {"encoder": ["1", "2"]}


def command(weights: dict[str, float], model: str = "encoder") -> ControlCommand:
    return ControlCommand("c1", model, "route", ModelState.of(weights), 1)


def test_a_valid_command_round_trips_through_avro() -> None:
    codec = control_codec()
    sent = command({"1": 90, "2": 10})
    received = ControlCommand.of(codec.decode(codec.encode(sent.record())))
    assert received == sent
    check(received, b"encoder", KNOWN)  # passes


@pytest.mark.parametrize(("weights", "model", "key", "code"), [
    ({"1": 1.0}, "chat", b"chat", "unknown_model"),
    ({"9": 1.0}, "encoder", b"encoder", "unknown_version"),
    ({"1": 0.0, "2": 0.0}, "encoder", b"encoder", "bad_weights"),
    ({"1": -1.0, "2": 2.0}, "encoder", b"encoder", "bad_weights"),
    ({"1": math.nan}, "encoder", b"encoder", "bad_weights"),
    ({}, "encoder", b"encoder", "no_versions"),
    ({"1": 1.0}, "encoder", b"other", "bad_key"),
])
def test_refused_commands_name_why(weights: dict[str, float], model: str, key: bytes,
                                   code: str) -> None:
    with pytest.raises(ControlRejected) as refused:
        check(command(weights, model), key, KNOWN)
    assert refused.value.code == code


def test_cli_edits_keep_the_whole_state() -> None:
    base = ModelState.of({"1": 1.0})
    loaded = edit(base, "load", {"2": 0.0})
    assert loaded.weights == (("1", 1.0), ("2", 0.0))
    routed = edit(loaded, "route", {"2": 10.0, "1": 90.0})
    assert routed.weights == (("1", 90.0), ("2", 10.0)) and routed.default == "1"
    assert edit(routed, "route", {"2": 1.0}).weights == (("1", 0.0), ("2", 1.0))
    paused = edit(routed, "pause", {})
    assert paused.paused and paused.weights == routed.weights
    assert not edit(paused, "resume", {}).paused
    assert edit(routed, "retire", {"2": 0.0}).weights == (("1", 90.0),)
    with pytest.raises(ControlRejected, match="route to another version first"):
        edit(loaded, "retire", {"1": 0.0})  # version 2 is loaded at weight 0


def test_bootstrap_gives_the_default_the_traffic_when_no_weight_is_set() -> None:
    assert bootstrap_state({"1": (0.0, True), "2": (0.0, False)}).weights == (
        ("1", 1.0), ("2", 0.0))
    assert bootstrap_state({"1": (9.0, True), "2": (1.0, False)}).weights == (
        ("1", 9.0), ("2", 1.0))


def test_a_paused_model_refuses_requests_and_the_others_serve() -> None:
    def model(name: str) -> ServedModel:
        return ServedModel(name, "1", FakeRunner(fake_spec(name, tasks=("embed",))))

    served = ServedModels.of([model("encoder"), model("other")], paused=frozenset({"encoder"}))
    with pytest.raises(InvalidRequest) as refused:
        served.resolve("encoder", None, "r1")
    assert refused.value.code == "model_paused"
    assert served.resolve("other", None, "r2").name == "other"
