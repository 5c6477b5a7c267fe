"""The encoder runner on a tiny random-weight BERT built here, loaded through the real code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from models.base import ModelInput, ModelRunner
from models.encoder import EncoderRunner
from models.errors import InvalidModelInput
from models.loading import load_runner
from models.registry import load_registry

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "ran",
    "in",
    "park",
    "red",
    "green",
    "blue",
    "sky",
    "is",
    "today",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_bert(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)


def load_tiny_encoder(root: Path, tasks: str = '["embed", "classify"]', max_batch_size: int = 2,
                      max_input_tokens: int = 8, extra: str = "") -> ModelRunner:
    """A tiny random BERT built under `root`, loaded through the real registry and loader."""
    build_tiny_bert(root / "weights")
    registry = root / "registry.toml"
    registry.write_text(
        f'[[models]]\nname = "enc"\nversion = "1"\ntasks = {tasks}\n'
        f'source = "{root / "weights"}"\nmax_batch_size = {max_batch_size}\n'
        f"max_input_tokens = {max_input_tokens}\n{extra}",
        encoding="utf-8",
    )
    return load_runner(load_registry(registry).get("enc"), root / "cache", torch_threads=1)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    return load_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"),
                             extra='labels = ["red sky", "a dog"]\n')


def text(value: str, labels: tuple[str, ...] = ()) -> ModelInput:
    return ModelInput(request_id=value, text=value, labels=labels)


def test_embeddings_have_the_hidden_size_and_unit_norm(runner: ModelRunner) -> None:
    assert isinstance(runner, EncoderRunner) and runner.tasks == ("embed", "classify")
    outs = runner.run("embed", [text("the cat sat"), text("a dog"), text("blue sky")])
    for out in outs:
        assert out.embedding is not None and len(out.embedding) == 32
        assert math.isclose(math.fsum(v * v for v in out.embedding), 1.0, rel_tol=1e-5)
    assert outs[0].tokens_in == 5  # [CLS] the cat sat [SEP]


def test_padding_does_not_change_an_embedding(runner: ModelRunner) -> None:
    alone = runner.run("embed", [text("the cat")])[0].embedding
    batch = runner.run("embed", [text("red green blue sky is today"), text("the cat")])
    assert alone is not None and batch[1].embedding is not None
    assert batch[1].embedding == pytest.approx(alone, abs=1e-5)


def test_count_tokens_matches_and_long_inputs_are_truncated(runner: ModelRunner) -> None:
    item = text("the cat sat on the mat")
    assert runner.count_tokens(item) == 8 == runner.run("embed", [item])[0].tokens_in
    long = text("the cat sat on the mat in the park today")
    assert runner.count_tokens(long) == 12  # the full length, so callers can reject it
    assert runner.run("embed", [long])[0].tokens_in == 8  # what the model saw


def test_classify_picks_the_label_identical_to_the_text(runner: ModelRunner) -> None:
    labels = ("a dog ran in the park", "the cat sat on the mat", "blue sky")
    out = runner.run("classify", [text("the cat sat on the mat", labels)])[0]
    assert out.label == "the cat sat on the mat"
    assert out.score is not None and 1 / 3 < out.score <= 1.0


def test_classify_falls_back_to_registry_labels(runner: ModelRunner) -> None:
    outs = runner.run("classify", [text("red sky"), text("a dog")])
    assert [o.label for o in outs] == ["red sky", "a dog"]


def test_classify_without_any_labels_is_a_value_error(tmp_path: Path) -> None:
    build_tiny_bert(tmp_path / "w")
    registry = tmp_path / "r.toml"
    registry.write_text(
        '[[models]]\nname = "e"\nversion = "1"\ntasks = ["classify"]\nsource = "w"\n',
        encoding="utf-8",
    )
    bare = load_runner(load_registry(registry).get("e"), tmp_path / "cache")
    with pytest.raises(InvalidModelInput, match="needs labels") as info:
        bare.run("classify", [text("the cat")])
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidModelInput):
        bare.run("embed", [text("the cat")])  # not among this entry's tasks
    bare.close()
    with pytest.raises(RuntimeError, match="closed"):
        bare.run("classify", [text("the cat", ("a", "b"))])
