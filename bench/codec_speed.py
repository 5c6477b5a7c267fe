"""Result encoding, fastavro's `schemaless_writer` against the compiled writer the codec uses
(`streams/wire/avro_writer.py`), side by side on the same records:

    .venv/bin/python -m bench.codec_speed

A no-op result (16-float embedding) and a MiniLM result (384 floats); µs per record, the
median of 5 repetitions of 5,000 encodes each. Both writers produce the same bytes (asserted).
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from typing import Any

from fastavro import schemaless_writer

from models.base import ModelOutput
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, ok_result
from streams.wire.codec import builtin_catalog, result_codec

REPS, N = 5, 5000


def result(dim: int) -> dict[str, Any]:
    header = RequestHeader("bench-0000001", "minilm", None, created_at_ms=1_795_600_000_000,
                           received_at_ms=1_795_600_000_020.0)
    output = ModelOutput(embedding=[(i % 17) / 17.0 for i in range(dim)], tokens_in=32)
    return ok_result(header, output, model_version="1", worker_id="w-1",
                     completed_at_ms=1_795_600_000_090, timings=Timings(inference_ms=60.0),
                     batch_size=8)


def per_record_us(encode: Callable[[], object]) -> float:
    times = []
    for _ in range(REPS):
        started = time.perf_counter()
        for _ in range(N):
            encode()
        times.append((time.perf_counter() - started) / N * 1e6)
    return statistics.median(times)


def main() -> None:
    codec = result_codec()
    schema = builtin_catalog().latest(codec.subject).parsed

    for dim in (16, 384):
        record = result(dim)

        def with_fastavro(record: dict[str, Any] = record) -> bytes:
            out = io.BytesIO()
            schemaless_writer(out, schema, record)
            return out.getvalue()

        def with_codec(record: dict[str, Any] = record) -> bytes:
            return codec.encode(record)

        assert with_codec()[5:] == with_fastavro()
        fast, compiled = per_record_us(with_fastavro), per_record_us(with_codec)
        print(f"{dim:>3}-float embedding: fastavro {fast:6.1f} µs, compiled {compiled:5.1f} µs "
              f"(framing included) -> x{fast / compiled:.1f}")


if __name__ == "__main__":
    main()
