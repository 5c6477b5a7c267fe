"""The naive contenders' per-message work, shared so faust and Quix do exactly the same thing:
decode one request, call the model once, encode its result."""

from __future__ import annotations

import time

from models.base import ModelInput, ModelRunner
from streams.protocol.header import RequestHeader
from streams.protocol.results import Timings, ok_result
from streams.wire.codec import request_codec, result_codec


class OneCallPerMessage:
    def __init__(self, runner: ModelRunner, worker_id: str) -> None:
        self._runner = runner
        self._worker_id = worker_id
        self._requests, self._results = request_codec(), result_codec()

    def __call__(self, value: bytes) -> tuple[bytes, bytes]:
        """(key, encoded result) for one encoded request."""
        request = self._requests.decode(value)
        header = RequestHeader.of(request, time.time() * 1000.0)
        started = time.time() * 1000.0
        output = self._runner.run("embed", [ModelInput(header.request_id, text=request["text"])])
        finished = time.time() * 1000.0
        result = ok_result(header, output[0], model_version=self._runner.version,
                           worker_id=self._worker_id, completed_at_ms=int(finished),
                           timings=Timings(inference_ms=finished - started), batch_size=1)
        return header.request_id.encode(), self._results.encode(result)
