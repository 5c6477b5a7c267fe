"""One tokenizer per thread.

A fast (Rust) tokenizer keeps its truncation and padding settings as mutable state, and
transformers switches that state on each call that asks for different settings. Shared between
the event loop (which counts input tokens at admission) and a model thread (which truncates and
pads batches), one thread's call can run under the other's settings: measured, the loop counted
256 tokens for a 2,002-token input (accepting an oversize request) while the model thread built
an untruncated batch 2,002 tokens wide. Each thread therefore gets its own copy.
"""

from __future__ import annotations

import copy

from transformers import PreTrainedTokenizerBase


def private_copy(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """An independent tokenizer with the same vocabulary, template and special tokens."""
    return copy.deepcopy(tokenizer)
