"""Prompt encoding and output decoding for causal LMs, shared by the static and continuous engines
so both see exactly the same token ids for a request (chat template, truncation, special tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from models.base import ModelInput
from models.errors import InvalidModelInput, ModelLoadError


class PromptCodec:
    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_input_tokens: int, key: str) -> None:
        self._tokenizer = tokenizer
        self._max_input_tokens = max_input_tokens
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise ModelLoadError(f"model {key}: the tokenizer has no pad or EOS token")
            tokenizer.pad_token = tokenizer.eos_token  # pads are masked out; any id will do
        self.pad_id: int = tokenizer.pad_token_id
        # An empty prompt still needs one token to condition on.
        starts = (tokenizer.bos_token_id, tokenizer.eos_token_id, self.pad_id)
        self.start_id: int = next(i for i in starts if i is not None)

    def encode(self, item: ModelInput) -> list[int]:
        """The full prompt's ids (after the chat template), before any truncation."""
        if item.messages:
            messages = [{"role": m.role, "content": m.content} for m in item.messages]
            prompt = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            # The template already wrote the special tokens (BOS, role markers) itself.
            ids: list[int] = self._tokenizer(prompt, add_special_tokens=False)["input_ids"]
            return ids
        if item.text is None:
            raise InvalidModelInput(f"request {item.request_id}: generate needs text or messages")
        plain: list[int] = self._tokenizer(item.text)["input_ids"]
        return plain

    def prompt_ids(self, item: ModelInput) -> list[int]:
        """What the model is fed: the end of an oversize prompt (that is where the generation
        prompt is), and never nothing."""
        return self.encode(item)[-self._max_input_tokens :] or [self.start_id]

    def decode(self, tokens: Sequence[int]) -> str:
        # No clean-up pass: it strips spaces before punctuation, which corrupts BPE output.
        text = self._tokenizer.decode(
            list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text if isinstance(text, str) else "".join(text)


def eos_ids(model: Any, tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """Every id that ends a generation: the model's generation config may list several."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(i for i in configured if isinstance(i, int))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
