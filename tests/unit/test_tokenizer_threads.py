"""The event loop counts tokens while the model thread truncates and pads: with one shared fast
tokenizer, one thread's call ran under the other's settings (an oversize input counted as
truncated, a batch built wider than the model's positions). Each thread now has its own."""

from __future__ import annotations

import threading

import pytest

from models.base import ModelInput, ModelRunner
from tests.unit.test_models_encoder import load_tiny_encoder


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    return load_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-threads"), tasks='["embed"]',
                             max_batch_size=4, max_input_tokens=16)


def test_counting_on_one_thread_is_exact_while_another_truncates(runner: ModelRunner) -> None:
    long_text = " ".join(["the cat sat on the mat"] * 50)  # 302 tokens with [CLS]/[SEP]
    expected = runner.count_tokens(ModelInput("probe", long_text))
    assert expected == 302
    stop = threading.Event()
    widths: list[int] = []
    failures: list[BaseException] = []

    def model_thread() -> None:
        batch = [ModelInput(f"b{i}", long_text if i % 2 else "a dog") for i in range(4)]
        while not stop.is_set():
            try:
                widths.extend(out.tokens_in for out in runner.run("embed", batch))
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)
                return

    thread = threading.Thread(target=model_thread)
    thread.start()
    try:
        counts = [runner.count_tokens(ModelInput(f"c{i}", long_text)) for i in range(400)]
    finally:
        stop.set()
        thread.join()
    assert failures == []  # no batch wider than the model's 64 positions
    assert set(counts) == {302}
    assert widths and max(widths) <= 16  # every batch truncated to max_input_tokens
