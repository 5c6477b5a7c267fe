"""GGUF conversion cache: keyed by content, written atomically, reused once complete."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from models import gguf_cache


@pytest.fixture
def gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several hash chunks
    return path


def fake_convert(calls: list[Path]) -> object:
    def convert(gguf_path: Path, staging: Path) -> None:
        calls.append(staging)
        staging.mkdir()
        (staging / "model.safetensors").write_text("weights")

    return convert


def test_hash_is_sha256_of_the_file(gguf: Path) -> None:
    assert gguf_cache.sha256_file(gguf) == hashlib.sha256(gguf.read_bytes()).hexdigest()


def test_converts_once_then_reuses(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(gguf_cache, "_convert", fake_convert(calls))
    messages: list[str] = []
    cache = tmp_path / "cache"
    first = gguf_cache.ensure_converted(gguf, cache, messages.append)
    assert first == cache / gguf_cache.sha256_file(gguf)
    assert (first / "model.safetensors").read_text() == "weights"
    assert any("one-time" in m for m in messages)
    assert gguf_cache.ensure_converted(gguf, cache) == first
    assert len(calls) == 1
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temp dirs left behind


def test_interrupted_conversion_never_looks_complete(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(gguf_path: Path, staging: Path) -> None:
        staging.mkdir()
        (staging / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_cache, "_convert", crash)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        gguf_cache.ensure_converted(gguf, cache)
    assert list(cache.iterdir()) == []
    calls: list[Path] = []
    monkeypatch.setattr(gguf_cache, "_convert", fake_convert(calls))
    done = gguf_cache.ensure_converted(gguf, cache)
    assert len(calls) == 1 and (done / "model.safetensors").read_text() == "weights"


def test_incomplete_target_and_dead_temp_dirs_are_replaced(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    digest = gguf_cache.sha256_file(gguf)
    (cache / digest).mkdir(parents=True)  # e.g. copied by hand, without the completion marker
    dead = cache / f".{digest}.tmp-999999999-abcdef12"
    dead.mkdir()
    calls: list[Path] = []
    monkeypatch.setattr(gguf_cache, "_convert", fake_convert(calls))
    done = gguf_cache.ensure_converted(gguf, cache)
    assert len(calls) == 1 and (done / "model.safetensors").exists()
    assert not dead.exists()


def test_a_changed_file_converts_again(
    gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(gguf_cache, "_convert", fake_convert(calls))
    first = gguf_cache.ensure_converted(gguf, tmp_path / "cache")
    gguf.write_bytes(b"other content")
    second = gguf_cache.ensure_converted(gguf, tmp_path / "cache")
    assert first != second and len(calls) == 2
