"""`collect`: the blocking `run` of a streaming engine (submit a batch, wait for every answer)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from models.base import ModelInput, ModelOutput, TokenEvent

Submit = Callable[[ModelInput, Callable[[TokenEvent], None]], None]


def collect(submit: Submit, batch: Sequence[ModelInput]) -> list[ModelOutput]:
    """One output per input, in order. Raises RuntimeError if any request failed, as a batch
    runner fails the whole batch; the others still ran to completion."""
    finals: list[TokenEvent | None] = [None] * len(batch)
    remaining = len(batch)
    lock = threading.Lock()
    done = threading.Event()

    def recorder(index: int) -> Callable[[TokenEvent], None]:
        def record(event: TokenEvent) -> None:
            nonlocal remaining
            if not event.finished:
                return
            with lock:
                finals[index] = event
                remaining -= 1
                if remaining == 0:
                    done.set()

        return record

    if not batch:
        return []
    for index, item in enumerate(batch):
        submit(item, recorder(index))
    done.wait()
    errors = [e.error for e in finals if e is not None and e.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(batch)} requests failed: {errors[0]}")
    return [e.output for e in finals if e is not None and e.output is not None]
