"""The worker's garbage-collector settings, applied once everything long-lived is loaded.

Why: CPython's cyclic collector runs every 700 container allocations and, every so often,
walks every tracked object; the worker allocates several short-lived objects per record and
holds a large long-lived heap (models, faust, aiokafka, pydantic, prometheus), so collections
were a quarter of the hot path. Profiled with the no-op model (`python -m bench.profile`):
4,516 records/s and 210 µs of sampled time per record as is; 5,704/s and 164 µs after
`gc.freeze()`; 6,093/s and 152 µs with the thresholds below as well.
- `gc.freeze()` moves what exists after start-up to a permanent generation that collections
  skip (it is never garbage: loaded models, modules, the app);
- a gen-0 threshold of 100,000 (default 700) collects the per-record garbage, e.g. futures
  and their callbacks, which form cycles, in larger, far rarer passes (a few MB of heap).
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 100_000
GEN1_THRESHOLD = 50
GEN2_THRESHOLD = 100


def settle_heap() -> int:
    """Collect once, freeze the survivors, raise the thresholds; returns the frozen count."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return gc.get_freeze_count()
