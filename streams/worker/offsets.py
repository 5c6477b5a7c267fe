"""Which offsets are safe to commit when records finish out of order (pure, no Kafka).

Records of one partition may complete out of order (different models, a DLQ write racing a
result). At-least-once means a committed position never passes an unfinished record, so the
position of a partition is its lowest unfinished offset, or one past the highest seen.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass
class _Partition:
    pending: set[int] = field(default_factory=set)
    next_offset: int = 0  # one past the highest offset seen
    committed: int = -1  # the position we last committed

    def position(self) -> int:
        return min(self.pending) if self.pending else self.next_offset


class OffsetTracker(Generic[P]):
    """Per-partition bookkeeping of in-flight offsets and commit positions."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}

    def started(self, partition: P, offset: int) -> None:
        state = self._partitions.setdefault(partition, _Partition(next_offset=offset))
        state.pending.add(offset)
        state.next_offset = max(state.next_offset, offset + 1)

    def finished(self, partition: P, offset: int) -> None:
        state = self._partitions.get(partition)
        if state is not None:  # a revoked partition may finish late: nothing to record
            state.pending.discard(offset)

    def in_flight(self, partition: P | None = None) -> int:
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.pending) if state else 0
        return sum(len(state.pending) for state in self._partitions.values())

    def position(self, partition: P) -> int | None:
        """Where this partition's work stands: its lowest unfinished offset; None = unseen."""
        state = self._partitions.get(partition)
        return state.position() if state is not None else None

    def to_commit(self, partitions: list[P] | None = None) -> dict[P, int]:
        """Positions that moved since the last `mark_committed`, for the given partitions."""
        chosen = self._partitions if partitions is None else {
            p: self._partitions[p] for p in partitions if p in self._partitions}
        return {p: s.position() for p, s in chosen.items() if s.position() > s.committed}

    def mark_committed(self, positions: dict[P, int]) -> None:
        for partition, position in positions.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = max(state.committed, position)

    def forget(self, partitions: list[P]) -> None:
        """Drop revoked partitions: their late completions no longer matter to us."""
        for partition in partitions:
            self._partitions.pop(partition, None)
