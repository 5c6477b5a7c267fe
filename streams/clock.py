"""The two clocks of the service, kept apart on purpose.

- **Monotonic** (`mono_ms`): every internal timer — batch waits, service-time estimates, sleeps,
  timeouts, back-offs. It never jumps when NTP steps the wall clock.
- **Epoch** (`epoch_ms`): what crosses process boundaries — a request's `created_at` and
  `deadline` (the client's wall clock), a result's `completed_at`, request-log timestamps.

A deadline is converted once, on arrival, from the client's epoch to the worker's monotonic
timeline (`deadline_to_mono`); from then on it cannot be moved by a clock step on the worker.
Skew between client and worker clocks shifts every deadline by the skew (a worker 200 ms ahead
of its clients expires requests 200 ms early): keep clocks NTP-synchronised to well under the
deadlines you use. `kafka_wait` (consumed - created_at) also reads across the two clocks and may
be negative when the client's clock runs ahead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


def mono_ms() -> float:
    return time.monotonic() * 1000.0


def epoch_ms() -> float:
    return time.time() * 1000.0


def deadline_to_mono(deadline_epoch_ms: float | None, *, epoch_now_ms: float,
                     mono_now_ms: float) -> float | None:
    """The monotonic time at which an epoch deadline (client clock) falls, seen from now."""
    if deadline_epoch_ms is None:
        return None
    return mono_now_ms + (deadline_epoch_ms - epoch_now_ms)


def mono_to_epoch(mono: float | None) -> float | None:
    """An earlier monotonic reading as epoch ms (for request-log timestamps)."""
    if mono is None:
        return None
    return epoch_ms() - (mono_ms() - mono)


async def sleep_until(wake: asyncio.Event, wake_at_mono_ms: float | None) -> None:
    """Until `wake` is set or the monotonic time `wake_at_mono_ms` comes (None: only `wake`)."""
    wake.clear()
    timeout = None if wake_at_mono_ms is None else max(0.0, (wake_at_mono_ms - mono_ms()) / 1e3)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), timeout)
