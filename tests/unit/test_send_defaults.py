"""`streamserve send` picks its model and task from the registry, never from a built-in name."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import load_registry
from streams.cli.parser import build_parser
from streams.client.commands import build_request, default_target
from streams.config import Settings
from streams.errors import ConfigError

REGISTRY = """
[[models]]
name = "alpha-encoder"
version = "1"
tasks = ["embed", "classify"]
kind = "fake"
default = true

[[models]]
name = "zeta-writer"
version = "1"
tasks = ["generate"]
kind = "fake"
max_new_tokens = 16
default = true

[[models]]
name = "beta-classifier"
version = "1"
tasks = ["classify", "embed"]
kind = "fake"
default = true
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "registry.toml"
    path.write_text(REGISTRY)
    return Settings(model_registry=path, data_dir=tmp_path)


def _request(settings: Settings, *argv: str) -> dict[str, object]:
    return build_request(build_parser().parse_args(["send", *argv]), settings)


def test_without_model_the_first_model_that_generates_answers_as_chat(settings: Settings) -> None:
    request = _request(settings, "Hello there")
    assert (request["model"], request["task"]) == ("zeta-writer", "generate")
    assert request["messages"] == [{"role": "user", "content": "Hello there"}]
    assert request["text"] is None


def test_no_chat_sends_plain_text(settings: Settings) -> None:
    request = _request(settings, "Once upon a time", "--no-chat")
    assert request["text"] == "Once upon a time" and request["messages"] == []


def test_a_named_model_gets_its_own_first_task(settings: Settings) -> None:
    assert _request(settings, "x", "--model", "beta-classifier")["task"] == "classify"
    assert _request(settings, "x", "--model", "alpha-encoder")["task"] == "embed"
    request = _request(settings, "x", "--model", "alpha-encoder", "--task", "classify",
                       "--label", "a", "--label", "b")
    assert (request["task"], request["labels"]) == ("classify", ["a", "b"])
    assert request["text"] == "x"


def test_served_models_restrict_the_default(settings: Settings) -> None:
    registry = load_registry(settings.model_registry)
    assert default_target(registry, ["beta-classifier", "alpha-encoder"], None, None) == (
        "alpha-encoder", "embed")  # no served model generates: the first served one


def test_an_unknown_model_needs_an_explicit_task(settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'nope'.*pass --task"):
        _request(settings, "x", "--model", "nope")
    assert _request(settings, "x", "--model", "nope", "--task", "embed")["model"] == "nope"


def test_model_and_task_given_need_no_registry(tmp_path: Path) -> None:
    settings = Settings(model_registry=tmp_path / "missing.toml", data_dir=tmp_path)
    request = _request(settings, "x", "--model", "m", "--task", "embed")
    assert (request["model"], request["task"]) == ("m", "embed")
