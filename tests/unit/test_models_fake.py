from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

from models.base import ChatMessage, GenerationParameters, ModelInput, ModelRunner
from models.errors import InvalidModelInput
from models.fake import RAISE_MARKER, FakeRunner, fake_embedding, fake_spec
from models.loading import load_runner
from models.registry import load_registry


def item(text: str, rid: str = "r", **params: object) -> ModelInput:
    return ModelInput(request_id=rid, text=text, parameters=GenerationParameters(**params))  # type: ignore[arg-type]


def test_fake_is_a_model_runner_loaded_from_a_registry_entry(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[models]]\nname = "f"\nversion = "1"\nkind = "fake"\ntasks = ["embed"]\n'
        "fake_delay_s = 0.01\nfake_embedding_dim = 8\n"
    )
    runner = load_runner(load_registry(path).get("f"), tmp_path / "cache")
    assert isinstance(runner, ModelRunner) and isinstance(runner, FakeRunner)
    assert runner.tasks == ("embed",) and runner.delay_s == 0.01
    [out] = runner.run("embed", [item("hello")])
    assert out.embedding is not None and len(out.embedding) == 8


def test_embed_is_deterministic_and_unit_norm() -> None:
    runner = FakeRunner(fake_spec())
    a, b, c = runner.run("embed", [item("one two"), item("one two"), item("three")])
    assert a.embedding == b.embedding == fake_embedding("one two", 16)
    assert a.embedding != c.embedding
    assert math.isclose(math.fsum(v * v for v in a.embedding or []), 1.0)
    assert a.tokens_in == 2


def test_generate_echoes_with_limits_and_stops() -> None:
    runner = FakeRunner(fake_spec(max_new_tokens=4))
    short, capped, stopped = runner.run(
        "generate",
        [
            item("a b c"),
            item("one two three four five six", max_new_tokens=10),  # capped by the spec at 4
            item("x y STOP z", stop=("STOP",)),
        ],
    )
    assert (short.text, short.finish_reason, short.tokens_out) == ("a b c", "stop", 3)
    assert (capped.text, capped.finish_reason, capped.tokens_out) == (
        "one two three four",
        "length",
        4,
    )
    assert (stopped.text, stopped.finish_reason) == ("x y ", "stop")
    chat = ModelInput("c", messages=(ChatMessage("user", "hi there"),))
    assert runner.count_tokens(chat) == 2
    assert runner.run("generate", [chat])[0].text == "hi there"


def test_classify_picks_first_label_or_rejects() -> None:
    runner = FakeRunner(fake_spec(labels=("default",)))
    own = ModelInput("a", text="t", labels=("b", "c"))
    out, fallback = runner.run("classify", [own, item("t")])
    assert (out.label, out.score) == ("b", 1.0) and fallback.label == "default"
    with pytest.raises(ValueError):
        FakeRunner(fake_spec()).run("classify", [item("t")])


def test_raise_marker_fails_the_whole_batch_and_counts_nothing() -> None:
    runner = FakeRunner(fake_spec())
    runner.run("embed", [item("ok"), item("ok too")])
    with pytest.raises(RuntimeError, match=RAISE_MARKER):
        runner.run("embed", [item("fine"), item(f"boom {RAISE_MARKER}")])
    assert runner.computed_items == 2 and runner.batches == [("embed", 2)]


def test_unsupported_task_is_rejected() -> None:
    runner = FakeRunner(fake_spec(tasks=("embed",)))
    with pytest.raises(InvalidModelInput):
        runner.run("generate", [item("x")])


def test_delay_and_thread_safe_counter() -> None:
    runner = FakeRunner(fake_spec(fake_delay_s=0.05))
    started = time.perf_counter()
    threads = [
        threading.Thread(target=runner.run, args=("embed", [item("x")] * 3)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - started >= 0.05
    assert runner.computed_items == 12
    runner.close()
    assert runner.closed
