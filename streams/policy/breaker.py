"""A model's circuit breaker (pure: the caller passes the monotonic clock).

After `failures_to_open` consecutive failed batches (every request of the batch failed, after
retries and isolation) the model is assumed broken — bad weights, a lost device — and its lane
stops taking work: the backlog waits uncommitted instead of turning into committed errors, and
the worker reports not ready. Every `cooldown_ms` one probe batch (a single request) may run;
its success closes the breaker, its failure keeps it open for another cooldown.
"""

from __future__ import annotations

from typing import Literal

Decision = Literal["run", "probe", "wait"]


class CircuitBreaker:
    def __init__(self, failures_to_open: int, cooldown_ms: float) -> None:
        if failures_to_open < 1:
            raise ValueError("failures_to_open must be >= 1")
        self.failures_to_open = failures_to_open
        self.cooldown_ms = cooldown_ms
        self.consecutive_failures = 0
        self.opened_at_ms: float | None = None  # None = closed

    @property
    def is_open(self) -> bool:
        return self.opened_at_ms is not None

    def decide(self, now_ms: float) -> Decision:
        if self.opened_at_ms is None:
            return "run"
        return "probe" if now_ms >= self.opened_at_ms + self.cooldown_ms else "wait"

    def next_probe_ms(self) -> float | None:
        return None if self.opened_at_ms is None else self.opened_at_ms + self.cooldown_ms

    def record(self, success: bool, now_ms: float) -> None:
        """The outcome of a batch (or a probe)."""
        if success:
            self.consecutive_failures = 0
            self.opened_at_ms = None
            return
        self.consecutive_failures += 1
        if self.opened_at_ms is not None or self.consecutive_failures >= self.failures_to_open:
            self.opened_at_ms = now_ms  # (re)open: the next probe waits a full cooldown
