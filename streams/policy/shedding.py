"""Early load shedding: refuse work that cannot finish before its deadline anyway.

A lane keeps an exponentially weighted average of its batch compute time. A request with a
deadline whose estimated completion (the batches queued ahead of it, plus the one computing,
plus its own) lands after the deadline is answered at once (`expired`, code `shed`) instead of
queueing, computing and arriving late, which would also delay everything behind it. Pure: the
caller passes the clock and the queue length.
"""

from __future__ import annotations

import math


class ServiceTimeEstimate:
    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha = alpha
        self.batch_ms: float | None = None  # unknown until the first batch ran

    def observe(self, batch_ms: float) -> None:
        previous = self.batch_ms
        self.batch_ms = batch_ms if previous is None else (
            self.alpha * batch_ms + (1 - self.alpha) * previous)

    def completion_ms(self, now_ms: float, queued_ahead: int, max_batch_size: int,
                      busy: bool) -> float | None:
        """When a request queued behind `queued_ahead` others would finish; None = no data."""
        if self.batch_ms is None:
            return None
        batches = math.floor(queued_ahead / max_batch_size) + 1 + (1 if busy else 0)
        return now_ms + batches * self.batch_ms


def misses_deadline(deadline_ms: float | None, completion_ms: float | None) -> bool:
    """Shed only on evidence: no deadline or no estimate yet means admit."""
    return deadline_ms is not None and completion_ms is not None and completion_ms > deadline_ms
