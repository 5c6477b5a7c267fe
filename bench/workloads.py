"""Inputs the benchmark sends: 32-token sentences for embeddings, chat prompts for generation,
and their Avro request payloads (Confluent framing, key = request id)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from models.base import ChatMessage, GenerationParameters, ModelInput
from streams.client.library import new_request
from streams.wire.codec import request_codec

# Common words, each one WordPiece for MiniLM, so 30 of them make a 32-token input with or
# without the tokenizer at hand (embed_texts checks it when it has one).
_WORDS = """
the stream of data flows through a broker and every worker reads its share of the log while
models turn text into vectors for search ranking and sorting of documents people write about
music food travel sports money weather cities rivers mountains science history school family
friends games movies books art health water light sound time day night year small large fast
slow new old good bad first last long short high low open close early late red blue green
black white house car train road bridge market price value order table file page line word
name number point group power system service message record event state
"""
_TOPICS = ("a lighthouse keeper", "a lost robot", "two rival chefs", "a river town",
           "a mountain rescue", "an old library", "a space station", "a desert caravan")
Pair = tuple[bytes, bytes]


def embed_texts(count_tokens: Callable[[str], int] | None, n: int, tokens: int = 32,
                seed: int = 7) -> list[str]:
    """`n` different sentences of exactly `tokens` tokens ([CLS] and [SEP] included).

    With no tokenizer (the no-op model) the sentences have `tokens - 2` words.
    """
    words = list(dict.fromkeys(_WORDS.split()))
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(words) for _ in range(tokens - 2)) for _ in range(n)]
    if count_tokens is not None:
        wrong = [t for t in texts[:8] if count_tokens(t) != tokens]
        if wrong:
            raise RuntimeError(f"sentence is not {tokens} tokens: {wrong[0]!r}")
    return texts


def story_prompts(n: int) -> list[str]:
    return [f"Write a long story about {_TOPICS[i % len(_TOPICS)]}." for i in range(n)]


def embed_inputs(texts: Sequence[str]) -> list[ModelInput]:
    return [ModelInput(f"c{i}", text=text) for i, text in enumerate(texts)]


def generate_inputs(prompts: Sequence[str], new_tokens: int) -> list[ModelInput]:
    params = GenerationParameters(max_new_tokens=new_tokens)
    return [ModelInput(f"g{i}", messages=(ChatMessage("user", p),), parameters=params)
            for i, p in enumerate(prompts)]


def embed_payloads(model: str, texts: Sequence[str], n: int, prefix: str) -> list[Pair]:
    """`n` embed requests (texts reused cyclically), encoded; key = request id."""
    codec = request_codec()
    out = []
    for i in range(n):
        rid = f"{prefix}-{i:07d}"
        out.append((rid.encode(), codec.encode(
            new_request(model, "embed", text=texts[i % len(texts)], request_id=rid))))
    return out


def generate_payloads(model: str, prompts: Sequence[str], n: int, new_tokens: int,
                      prefix: str) -> list[Pair]:
    codec = request_codec()
    out = []
    for i in range(n):
        rid = f"{prefix}-{i:07d}"
        request = new_request(model, "generate", messages=[
            {"role": "user", "content": prompts[i % len(prompts)]}],
            parameters={"max_new_tokens": new_tokens}, request_id=rid)
        out.append((rid.encode(), codec.encode(request)))
    return out
