"""Which version of a model serves a request that names none: default, or a weighted canary split.

The choice hashes the request id, so it is deterministic: a request redelivered after a crash,
or retried by its client, lands on the same version as before. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def unit_interval(request_id: str) -> float:
    """A uniform-looking number in [0, 1) derived from the request id."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class VersionRouter:
    def __init__(self, default: str, weights: Mapping[str, float] | None = None) -> None:
        positive = {v: w for v, w in (weights or {}).items() if w > 0}
        total = sum(positive.values())
        self.default = default
        # Cumulative upper bounds over the sorted versions, so the split is stable.
        self._bounds: list[tuple[float, str]] = []
        running = 0.0
        for version in sorted(positive):
            running += positive[version] / total
            self._bounds.append((running, version))

    @property
    def split(self) -> dict[str, float]:
        shares, previous = {}, 0.0
        for bound, version in self._bounds:
            shares[version], previous = bound - previous, bound
        return shares or {self.default: 1.0}

    def pick(self, request_id: str) -> str:
        if not self._bounds:
            return self.default
        point = unit_interval(request_id)
        for bound, version in self._bounds:
            if point < bound:
                return version
        return self._bounds[-1][1]  # float rounding at the very top
