"""Building transformers' continuous-batching manager (paged KV cache) for one served model.

- Explicit cache sizes: left to itself the manager sizes its cache from free memory, which on a
  CPU host means 60% of RAM (5 GB for a 135M model). We size it from the registry entry.
- Per-request sampling: in transformers 5.17 `do_sample` is one switch for the whole manager and
  there is no per-request seed; its per-request temperature/top_p processors only scale logits
  before that shared switch. So the manager runs greedy (argmax) and `RowSamplingProcessor`
  draws the token of each sampling row itself, with the request's own temperature, top_p and
  seeded generator, then masks every other token so argmax picks the draw (the static runner's
  `RowSampler` trick). Greedy rows are untouched, so greedy output is exact.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import GenerationConfig, LogitsProcessorList
from transformers.generation.configuration_utils import ContinuousBatchingConfig
from transformers.generation.continuous_batching.cb_logits_processors import (
    ContinuousBatchingLogitsProcessor,
    ContinuousBatchingLogitsProcessorList,
)

from models.base import GenerationParameters
from models.sampling import draw_token, seeded_generator

logger = logging.getLogger(__name__)

BLOCK_SIZE = 64  # tokens per KV-cache page
MAX_BATCH_TOKENS = 256  # tokens per forward step: caps a prefill chunk (long prompts are split)
KV_CACHE_BUDGET_BYTES = 512 << 20  # beyond one full-length request, the cache stays under this


@dataclass(frozen=True)
class CachePlan:
    block_size: int
    num_blocks: int
    max_batch_tokens: int


def plan_cache(config: Any, dtype: torch.dtype, sequences: int, max_sequence: int) -> CachePlan:
    """Room for `sequences` full-length sequences, within the budget, but always for one."""
    text = config.get_text_config()
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    itemsize = torch.empty((), dtype=dtype).element_size()
    block_bytes = 2 * text.num_hidden_layers * heads * head_dim * itemsize * BLOCK_SIZE
    per_sequence = math.ceil(max_sequence / BLOCK_SIZE)
    wanted = sequences * per_sequence
    affordable = KV_CACHE_BUDGET_BYTES // block_bytes
    return CachePlan(BLOCK_SIZE, max(per_sequence + 1, min(wanted, affordable)), MAX_BATCH_TOKENS)


class RowSamplingProcessor(ContinuousBatchingLogitsProcessor):
    """Per-request sampling inside the manager's forward step (see the module docstring)."""

    def __init__(self) -> None:
        # Parameters come from `register`, not from the manager's per-request kwargs.
        self.supported_kwargs: dict[str, type] = {}
        self.ignored_kwargs: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._params: dict[str, GenerationParameters] = {}
        self._generators: dict[str, torch.Generator] = {}
        self._rows: list[str] = []  # request ids of the current step's logits rows, in order

    def register(self, request_id: str, params: GenerationParameters) -> None:
        if params.temperature > 0:
            with self._lock:
                self._params[request_id] = params

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._params.pop(request_id, None)
            self._generators.pop(request_id, None)

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(0)

    def prepare_tensor_args(self, requests_with_new_token: list[Any]) -> torch.Tensor:
        # Called on the manager's thread right before the step's forward pass, with the rows in
        # logits order; the batch is synchronous on CPU, so __call__ sees this same list.
        self._rows = [request.state.request_id for request in requests_with_new_token]
        return torch.zeros(len(self._rows), dtype=torch.int32)

    def __call__(self, scores: torch.FloatTensor, tensor_arg: torch.Tensor) -> torch.FloatTensor:
        with self._lock:
            rows = [(i, rid, self._params.get(rid)) for i, rid in enumerate(self._rows)]
        picks = [(i, rid, p) for i, rid, p in rows if p is not None and i < scores.size(0)]
        if not picks:
            return scores
        masked = scores.clone()
        for row, request_id, params in picks:
            token = draw_token(masked[row], params, self._generator(request_id, params, masked))
            masked[row].fill_(float("-inf"))
            masked[row, token] = 0.0
        return cast(torch.FloatTensor, masked)

    def _generator(
        self, request_id: str, params: GenerationParameters, like: torch.Tensor
    ) -> torch.Generator | None:
        if params.seed is None:
            return None  # the global RNG: unseeded requests need no reproducibility
        with self._lock:
            if request_id not in self._generators:
                self._generators[request_id] = seeded_generator(params.seed, like)
            return self._generators[request_id]


def new_manager(
    model: Any,
    plan: CachePlan,
    sequences: int,
    eos: list[int],
    pad_id: int,
    sampler: RowSamplingProcessor,
) -> Any:
    """A started manager: greedy at the manager level, `sampler` doing per-request sampling."""
    generation = GenerationConfig(  # type: ignore[no-untyped-call]
        do_sample=False, eos_token_id=eos, pad_token_id=pad_id
    )
    config = ContinuousBatchingConfig(
        block_size=plan.block_size,
        num_blocks=plan.num_blocks,
        max_batch_tokens=plan.max_batch_tokens,
        max_requests_per_batch=sequences,
        use_cuda_graph=False,
        use_async_batching=False,  # __call__ relies on prepare/step/update running in order
    )
    manager = model.init_continuous_batching(
        generation_config=generation, continuous_batching_config=config
    )
    # The manager built its processor list from the generation config (empty when greedy);
    # ours replaces it before start(), which sizes the per-step argument buffers from it.
    processors = ContinuousBatchingLogitsProcessorList(LogitsProcessorList([sampler]))
    processors.tensors_required = 1
    manager.logit_processor = processors
    # The manager's thread is not a daemon, so a process that never closes its engine would
    # hang at exit waiting for it; a thread inherits daemon-ness from the one that starts it.
    starter = threading.Thread(target=manager.start, daemon=True)
    starter.start()
    starter.join()
    return manager


def healthy(manager: Any) -> bool:
    """Running and accepting requests (`add_request` returns None otherwise)."""
    refused = manager.background_thread_status.can_accept_new_requests()
    return bool(manager.is_running()) and refused is None


def stop(manager: Any) -> None:
    """Stop and release a manager. A hard stop does not wait for the requests it holds (it fails
    them into its own output queue, which nobody reads any more) and gives the model its own
    attention implementation back."""
    try:
        manager.stop(block=True, timeout=10, hard_stop=True)
        manager.destroy()
    except Exception:  # a half-dead manager may trip over its own state; it is dropped anyway
        logger.exception("stopping a continuous-batching manager failed")
