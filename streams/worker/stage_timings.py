"""A request's stage durations as the metrics observe them (seconds; None: the stage did not
happen), from a result's or a request-log row's millisecond timings."""

from __future__ import annotations

from dataclasses import dataclass

from streams.analytics.sink.request_log import RequestLogRow


@dataclass(frozen=True, slots=True)
class Timings:
    """Per-request stage durations in seconds; None = the stage did not happen."""

    kafka_wait_s: float | None = None
    queue_wait_s: float | None = None
    inference_s: float | None = None
    end_to_end_s: float | None = None
    time_to_first_token_s: float | None = None
    time_per_output_token_s: float | None = None

    @classmethod
    def from_row(cls, row: RequestLogRow) -> Timings:
        """The timings of a request-log row (ms there, seconds here)."""
        return cls.from_ms(row.status, row.kafka_wait_ms, row.queue_wait_ms, row.inference_ms,
                           row.total_ms, row.time_to_first_token_ms, row.tokens_out)

    @classmethod
    def from_ms(cls, status: str, kafka_wait_ms: float, queue_wait_ms: float,
                inference_ms: float, total_ms: float, time_to_first_token_ms: float | None,
                tokens_out: int) -> Timings:
        """From a result's millisecond stage timings (the request-log row's columns)."""
        ttft = time_to_first_token_ms
        tpot = None
        if ttft is not None and tokens_out > 1:  # decode time spread over the later tokens
            tpot = max(0.0, total_ms - ttft) / 1000 / (tokens_out - 1)
        ran = status == "ok"  # expired/rejected requests have no real stage timings
        return cls(
            kafka_wait_s=kafka_wait_ms / 1000,
            queue_wait_s=queue_wait_ms / 1000 if ran else None,
            inference_s=inference_ms / 1000 if ran else None,
            end_to_end_s=total_ms / 1000,
            time_to_first_token_s=None if ttft is None else ttft / 1000,
            time_per_output_token_s=tpot,
        )
