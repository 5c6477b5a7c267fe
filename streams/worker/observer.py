"""What the engine reports, for metrics and the request log; it knows neither Prometheus nor
ClickHouse. The app wires an implementation; the default does nothing."""

from __future__ import annotations

from typing import Any, Protocol

from streams.worker.jobs import Source


class WorkerObserver(Protocol):
    def result_sent(self, result: dict[str, Any], source: Source,
                    batch_started_at_ms: float | None, inference_started_at_ms: float | None,
                    task: str = "", priority: int = 0) -> None:
        """A result was acknowledged by Kafka (called once per result)."""

    def dead_lettered(self, code: str) -> None:
        """A record went to the dead-letter topic."""

    def shed(self, model: str) -> None:
        """A request was refused early: it would have missed its deadline."""

    def batch_done(self, model: str, size: int, inference_s: float) -> None:
        """A model lane finished one batch."""

    def assignment_changed(self, partitions: int) -> None:
        """The consumer now owns this many partitions."""

    def progress(self, in_flight: int, lag: dict[tuple[str, int], int],
                 revoked: list[tuple[str, int]]) -> None:
        """Periodic: records in flight, consumer lag per owned partition, partitions let go."""

    def model_failed(self, model: str, kind: str) -> None:
        """A model call failed: kind is 'error', 'transient' or 'timeout'."""

    def breaker_changed(self, model: str, is_open: bool) -> None:
        """A model's circuit breaker state after a batch."""

    def reduced(self, kind: str) -> None:
        """A derived record ('dlq' or 'result') was sent in a reduced form."""

    def abandoned(self, count: int) -> None:
        """Results of revoked partitions dropped (their new owner redoes them)."""

    def backpressure(self) -> str | None:
        """Why fetching must pause now (e.g. the request-log spool is full), or None."""

    def serving(self, models: frozenset[str]) -> None:
        """The model names served from now on (label values allowed in metrics)."""

    def handed_over(self, seconds: float) -> None:
        """A revocation finished after `seconds` in on_partitions_revoked."""

    def transaction(self, outcome: str, answers: int) -> None:
        """Exactly-once: a partition's transaction 'committed' (with `answers`), 'aborted' or
        'fenced'."""

    def held_back(self, seconds: float) -> None:
        """Exactly-once: how long a finished answer waited for its transaction's commit."""

    def replayed(self, result: dict[str, Any], reason: str) -> None:
        """A computed answer was dropped and will be computed again ('handover': its
        partition moved; 'fenced': its transaction was fenced)."""

    def task_restarted(self, task: str) -> None:
        """A supervised task crashed and was restarted."""


class NullObserver:
    def result_sent(self, result: dict[str, Any], source: Source,
                    batch_started_at_ms: float | None, inference_started_at_ms: float | None,
                    task: str = "", priority: int = 0) -> None:
        pass

    def dead_lettered(self, code: str) -> None:
        pass

    def shed(self, model: str) -> None:
        pass

    def batch_done(self, model: str, size: int, inference_s: float) -> None:
        pass

    def assignment_changed(self, partitions: int) -> None:
        pass

    def progress(self, in_flight: int, lag: dict[tuple[str, int], int],
                 revoked: list[tuple[str, int]]) -> None:
        pass

    def model_failed(self, model: str, kind: str) -> None:
        pass

    def breaker_changed(self, model: str, is_open: bool) -> None:
        pass

    def reduced(self, kind: str) -> None:
        pass

    def abandoned(self, count: int) -> None:
        pass

    def backpressure(self) -> str | None:
        return None

    def serving(self, models: frozenset[str]) -> None:
        pass

    def handed_over(self, seconds: float) -> None:
        pass

    def transaction(self, outcome: str, answers: int) -> None:
        pass

    def held_back(self, seconds: float) -> None:
        pass

    def replayed(self, result: dict[str, Any], reason: str) -> None:
        pass

    def task_restarted(self, task: str) -> None:
        pass
