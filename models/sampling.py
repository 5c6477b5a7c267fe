"""Per-row decoding controls for one batched `generate` call.

transformers applies one temperature/top_p/seed to a whole batch and its `generate` takes no
torch.Generator. We run it in greedy mode and let `RowSampler` draw each sampling row's token
with that row's own parameters and seeded generator, then mask every other token: argmax picks
the draw. So requests with different parameters share one batch and a seed reproduces its
request's output whatever else is in the batch (up to float noise from padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import LogitsProcessor, StoppingCriteria

from models.base import GenerationParameters


class RowSampler(LogitsProcessor):
    def __init__(self, parameters: Sequence[GenerationParameters]) -> None:
        self._parameters = list(parameters)
        self._generators: dict[int, torch.Generator] = {}

    @staticmethod
    def needed(parameters: Sequence[GenerationParameters]) -> bool:
        return any(p.temperature > 0 for p in parameters)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.clone()
        for row, params in enumerate(self._parameters):
            if params.temperature <= 0:
                continue  # greedy row: argmax over the untouched scores
            token = self._draw(row, params, scores[row])
            scores[row].fill_(float("-inf"))
            scores[row, token] = 0.0
        return scores

    def _draw(self, row: int, params: GenerationParameters, logits: torch.Tensor) -> int:
        return draw_token(logits, params, self._generator(row, params, logits))

    def _generator(
        self, row: int, params: GenerationParameters, like: torch.Tensor
    ) -> torch.Generator | None:
        if params.seed is None:
            return None  # the global RNG: unseeded requests need no reproducibility
        if row not in self._generators:
            self._generators[row] = seeded_generator(params.seed, like)
        return self._generators[row]


def draw_token(
    logits: torch.Tensor, params: GenerationParameters, generator: torch.Generator | None
) -> int:
    """One token drawn from one row's logits with that request's temperature and top_p."""
    logits = logits / params.temperature
    if params.top_p < 1.0:
        logits = _top_p(logits, params.top_p)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def seeded_generator(seed: int, like: torch.Tensor) -> torch.Generator:
    generator = torch.Generator(device=like.device)
    generator.manual_seed(seed)
    return generator


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    ordered, order = torch.sort(logits, descending=True)
    probs = torch.softmax(ordered, dim=-1)
    # Drop a token when the tokens before it already cover top_p; the best token always stays.
    drop = (torch.cumsum(probs, dim=-1) - probs) > top_p
    ordered = ordered.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(0, order, ordered)


class RowStop(StoppingCriteria):
    """Stops a row at its own max_new_tokens or once its text contains one of its stop strings,
    so a batch ends as soon as every row is done instead of at the batch's largest limit."""

    def __init__(
        self,
        prompt_width: int,
        max_new_tokens: Sequence[int],
        stops: Sequence[Sequence[str]],
        decode: Callable[[Sequence[int]], str],
    ) -> None:
        self._start = prompt_width
        self._limits = list(max_new_tokens)
        self._stops = [tuple(s for s in row if s) for row in stops]
        self._decode = decode

    def __call__(self, input_ids: torch.Tensor, scores: object, **kwargs: object) -> torch.Tensor:
        generated = input_ids.shape[1] - self._start
        done = [generated >= limit for limit in self._limits]
        for row, stops in enumerate(self._stops):
            if stops and not done[row]:
                text = self._decode(input_ids[row, self._start :].tolist())
                done[row] = any(s in text for s in stops)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
