"""Which offsets are safe to commit when records finish out of order (pure, no Kafka).

Records of one partition may complete out of order (different models, a DLQ write racing a
result). At-least-once means a committed position never passes an unfinished record, so the
position of a partition is its lowest unfinished offset, or one past the highest seen.

Every assignment of a partition gets a new **generation**. A record is tracked under the
generation it was fetched in; anything reported under an older generation (a fetch that was in
flight while the partition was revoked and came back, a batch that finished after the hand-over)
is ignored, so stale work can neither seed a fresh entry nor move a fresh commit position.
The tracker also sums the bytes of unfinished records: memory is bounded in bytes, not only
in records.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)

_generations = itertools.count(1)


@dataclass
class _Partition:
    generation: int
    pending: dict[int, int] = field(default_factory=dict)  # offset -> bytes held
    next_offset: int | None = None  # one past the highest offset seen; None = nothing seen
    committed: int = -1  # the position we last committed

    def position(self) -> int | None:
        if self.pending:
            return min(self.pending)
        return self.next_offset


class OffsetTracker(Generic[P]):
    """Per-partition bookkeeping of in-flight offsets, bytes and commit positions."""

    def __init__(self) -> None:
        self._partitions: dict[P, _Partition] = {}
        self._bytes = 0

    def assign(self, partition: P) -> int:
        """Start a new generation of `partition` (it was just assigned); returns it."""
        self._drop(partition)
        generation = next(_generations)
        self._partitions[partition] = _Partition(generation)
        return generation

    def generation(self, partition: P) -> int | None:
        """The current generation of `partition`; None when it is not assigned."""
        state = self._partitions.get(partition)
        return state.generation if state is not None else None

    def started(self, partition: P, generation: int, offset: int, size: int = 0) -> bool:
        """Track a fetched record; False (and nothing tracked) when it belongs to an older
        assignment of its partition: the caller must drop it, it will be fetched again."""
        state = self._current(partition, generation)
        if state is None:
            return False
        if offset not in state.pending:
            state.pending[offset] = size
            self._bytes += size
        state.next_offset = offset + 1 if state.next_offset is None else max(
            state.next_offset, offset + 1)
        return True

    def finished(self, partition: P, generation: int, offset: int) -> None:
        state = self._current(partition, generation)
        if state is not None:  # stale completions no longer matter to us
            self._bytes -= state.pending.pop(offset, 0)

    def is_current(self, partition: P, generation: int) -> bool:
        return self._current(partition, generation) is not None

    def in_flight(self, partition: P | None = None) -> int:
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.pending) if state else 0
        return sum(len(state.pending) for state in self._partitions.values())

    def in_flight_bytes(self) -> int:
        return self._bytes

    def position(self, partition: P) -> int | None:
        """Where this partition's work stands: its lowest unfinished offset; None = unseen."""
        state = self._partitions.get(partition)
        return state.position() if state is not None else None

    def to_commit(self, partitions: list[P] | None = None) -> dict[P, int]:
        """Positions that moved since the last `mark_committed`, for the given partitions."""
        chosen = self._partitions if partitions is None else {
            p: self._partitions[p] for p in partitions if p in self._partitions}
        moved = {}
        for partition, state in chosen.items():
            position = state.position()
            if position is not None and position > state.committed:
                moved[partition] = position
        return moved

    def mark_committed(self, positions: dict[P, int]) -> None:
        for partition, position in positions.items():
            state = self._partitions.get(partition)
            if state is not None:
                state.committed = max(state.committed, position)

    def forget(self, partitions: list[P]) -> None:
        """Drop revoked partitions: their late completions no longer matter to us."""
        for partition in partitions:
            self._drop(partition)

    def _drop(self, partition: P) -> None:
        state = self._partitions.pop(partition, None)
        if state is not None:
            self._bytes -= sum(state.pending.values())

    def _current(self, partition: P, generation: int) -> _Partition | None:
        state = self._partitions.get(partition)
        return state if state is not None and state.generation == generation else None
