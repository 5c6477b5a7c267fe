"""The causal-LM runner on a tiny random-weight Llama built here, loaded through the real code."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.base import ChatMessage, GenerationParameters, ModelInput, ModelRunner
from models.errors import InvalidModelInput
from models.loading import load_runner
from models.registry import load_registry

CORPUS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "what is the capital of france",
    "hello world how are you today",
    "red green blue yellow orange purple",
]
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tiny_llama(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted({w for line in CORPUS for w in line.split()})
    vocab = {token: i for i, token in enumerate(SPECIALS + words)}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
        initializer_range=0.2,  # peaked logits: greedy choices are far from ties
    )
    LlamaForCausalLM(config).save_pretrained(folder)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> ModelRunner:
    root = tmp_path_factory.mktemp("tiny-llm")
    build_tiny_llama(root / "weights")
    registry = root / "registry.toml"
    registry.write_text(
        '[[models]]\nname = "tiny"\nversion = "1"\ntasks = ["generate"]\nsource = "weights"\n'
        "max_batch_size = 4\nmax_input_tokens = 16\nmax_new_tokens = 12\n",
        encoding="utf-8",
    )
    messages: list[str] = []
    loaded = load_runner(load_registry(registry).get("tiny"), root / "cache", 1, messages.append)
    assert messages and messages[0].startswith("loading tiny")
    return loaded


def gen(text: str, **params: object) -> ModelInput:
    return ModelInput(request_id=text, text=text, parameters=GenerationParameters(**params))  # type: ignore[arg-type]


def test_greedy_is_deterministic_and_capped(runner: ModelRunner) -> None:
    first = runner.run("generate", [gen("the cat", max_new_tokens=50)])[0]
    again = runner.run("generate", [gen("the cat", max_new_tokens=50)])[0]
    assert first == again
    assert first.text and first.tokens_in == 2
    assert first.tokens_out <= runner.max_new_tokens == 12  # the registry cap beats the request


def test_left_padding_gives_the_same_output_alone_and_in_a_batch(runner: ModelRunner) -> None:
    short = gen("the cat", max_new_tokens=8)
    long = gen("hello world how are you today red green blue", max_new_tokens=8)
    alone = runner.run("generate", [short])[0]
    together = runner.run("generate", [long, short])
    assert together[1] == alone
    assert together[0] == runner.run("generate", [long])[0]


def test_each_row_honours_its_own_max_new_tokens(runner: ModelRunner) -> None:
    outs = runner.run("generate", [gen("a dog", max_new_tokens=2), gen("a dog", max_new_tokens=9)])
    assert outs[0].tokens_out <= 2 and outs[1].tokens_out <= 9
    if outs[1].finish_reason == "length":
        assert (outs[0].finish_reason, outs[0].tokens_out, outs[1].tokens_out) == ("length", 2, 9)
        assert outs[1].text is not None and outs[0].text is not None
        assert outs[1].text.startswith(outs[0].text)


def test_stop_strings_cut_the_text(runner: ModelRunner) -> None:
    full = runner.run("generate", [gen("red green", max_new_tokens=12)])[0]
    assert full.text is not None
    words = full.text.split()
    assert len(words) >= 3, full.text
    stop = words[2]
    cut = runner.run("generate", [gen("red green", max_new_tokens=12, stop=(stop, "zzz"))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop)]
    assert 0 < cut.tokens_out <= full.tokens_out


def test_chat_template_and_count_tokens_agree(runner: ModelRunner) -> None:
    chat = ModelInput(
        request_id="c",
        messages=(ChatMessage("system", "hello"), ChatMessage("user", "what is the capital")),
        parameters=GenerationParameters(max_new_tokens=4),
    )
    # "<|system|> hello <|user|> what is the capital <|assistant|>"
    assert runner.count_tokens(chat) == 8
    out = runner.run("generate", [chat])[0]
    assert out.tokens_in == 8 and out.finish_reason in ("stop", "length")
    assert runner.count_tokens(gen("the cat sat")) == 3


def test_oversize_prompts_keep_their_end(runner: ModelRunner) -> None:
    long = " ".join(["red green blue yellow"] * 6)  # 24 tokens, limit 16
    assert runner.count_tokens(gen(long)) == 24
    assert runner.run("generate", [gen(long, max_new_tokens=2)])[0].tokens_in == 16


def test_seeded_sampling_is_reproducible_whatever_the_batch(runner: ModelRunner) -> None:
    seeded = gen("the cat", max_new_tokens=10, temperature=1.0, seed=7)
    alone = runner.run("generate", [seeded])[0]
    mixed = runner.run("generate", [gen("a dog ran"), seeded, gen("red", temperature=0.5)])
    assert mixed[1] == alone
    others = {
        runner.run("generate", [gen("the cat", max_new_tokens=10, temperature=1.0, seed=s)])[0].text
        for s in range(5)
    }
    assert len(others) > 1


def test_tiny_top_p_is_greedy(runner: ModelRunner) -> None:
    greedy = runner.run("generate", [gen("a dog", max_new_tokens=6)])[0]
    nucleus = runner.run("generate", [gen("a dog", max_new_tokens=6, temperature=2.0, top_p=1e-6)])
    assert nucleus[0] == greedy


def test_batches_larger_than_max_batch_size_are_split(runner: ModelRunner) -> None:
    colours = ["red", "green", "blue", "yellow", "orange", "purple"]
    outs = runner.run("generate", [gen(f"the cat {w}", max_new_tokens=2) for w in colours * 2])
    assert len(outs) == 12 and all(o.tokens_in == 3 for o in outs)


def test_wrong_task_and_empty_input_are_rejected(runner: ModelRunner) -> None:
    with pytest.raises(InvalidModelInput):
        runner.run("embed", [gen("x")])
    with pytest.raises(ValueError):
        runner.run("generate", [ModelInput(request_id="empty")])
