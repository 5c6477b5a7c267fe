"""Turning one row of generated token ids into the text a client sees (pure, no torch)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

Decode = Callable[[Sequence[int]], str]


@dataclass(frozen=True)
class Finished:
    text: str
    tokens_out: int
    finish_reason: str  # "stop" (EOS or a stop string) | "length"


def finish_sequence(
    tokens: Sequence[int],
    *,
    eos_ids: Collection[int],
    max_new_tokens: int,
    stops: Sequence[str],
    decode: Decode,
) -> Finished:
    """Cut `tokens` at this request's own limit, the first EOS and the first stop string.

    A batch generates up to the largest `max_new_tokens` in it, so a row may hold more tokens
    than its request asked for; those are dropped here. The stop string itself is not returned.
    """
    kept = list(tokens[:max_new_tokens])
    reason = "length"
    for index, token in enumerate(kept):
        if token in eos_ids:
            kept, reason = kept[:index], "stop"
            break
    text = decode(kept)
    cut = first_stop(text, stops)
    if cut is None:
        return Finished(text, len(kept), reason)
    return Finished(text[:cut], _tokens_until(kept, stops, decode), "stop")


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in `text`, if any."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def _tokens_until(tokens: list[int], stops: Sequence[str], decode: Decode) -> int:
    # Count the tokens the model spent up to and including the one completing the stop string.
    for count in range(1, len(tokens) + 1):
        if first_stop(decode(tokens[:count]), stops) is not None:
            return count
    return len(tokens)
