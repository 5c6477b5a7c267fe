"""Admission of one consumed record: decode → validate → route → reply topic → lane.

Cheap checks come first, so that a hostile record costs the event loop microseconds: the byte
size against the largest cap of any served model before decoding, then the named model's own
caps (bytes, characters, messages, labels, priority, deadline, attributes) before its tokenizer
counts anything. Every failure — a refused record or an exception nobody foresaw (a chat
template or tokenizer choking on odd input) — rejects that record only: it becomes a dead
letter, plus a `rejected` result when its request id is readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from streams.clock import deadline_to_mono, epoch_ms, mono_ms
from streams.errors import DecodeError, InvalidRequest
from streams.protocol.header import RequestHeader
from streams.protocol.requests import (
    check_request_size,
    count_input_tokens,
    validate_request,
)
from streams.protocol.results import expired_result, shed_result
from streams.wire.codec import RecordCodec
from streams.wire.registry_catalog import RegistrySchemas
from streams.worker.jobs import Job, Source
from streams.worker.lanes.base import Lane, Publish
from streams.worker.observer import WorkerObserver
from streams.worker.rejection import Rejector
from streams.worker.replies import ReplyTopics
from streams.worker.served import ServedModel, ServedModels

if TYPE_CHECKING:
    from streams.tracing.spans import RequestTrace, Tracer

logger = logging.getLogger(__name__)


class Admission:
    def __init__(self, codec: RecordCodec, served: Callable[[], ServedModels],
                 lanes: Mapping[tuple[str, str], Lane], replies: ReplyTopics,
                 rejector: Rejector, publish: Publish, observer: WorkerObserver,
                 worker_id: str, schemas: RegistrySchemas | None = None,
                 tracer: Tracer | None = None) -> None:
        self._codec = codec
        self._served = served
        self._lanes = lanes
        self._replies = replies
        self._rejector = rejector
        self._publish = publish
        self._observer = observer
        self._worker_id = worker_id
        self._schemas = schemas  # learns writer ids the registry knows and we do not yet
        self._tracer = tracer

    async def admit(self, source: Source, size: int) -> None:
        """Give the record at `source` its way to an outcome; never raises (but cancellation)."""
        header: RequestHeader | None = None
        task = ""
        try:
            served = self._served()
            if size > served.max_request_bytes():
                raise InvalidRequest("request_too_large", f"request is {size} bytes; no served "
                                     f"model takes more than {served.max_request_bytes()}")
            value = source.value or b""
            if self._schemas is not None and (learning := self._schemas.pending(value)):
                await learning  # a producer's newer schema: fetched off the loop, then cached
            decoded = self._codec.decode(value)
            header = RequestHeader.of(decoded, source.consumed_at_ms)
            task = str(decoded.get("task") or "")[:32]
            await self._route(decoded, header, source, size, served)
        except DecodeError as exc:
            await self._rejector.reject(source, exc.reason, exc, header=None)
        except InvalidRequest as exc:
            await self._rejector.reject(source, exc.code, exc, header, task)
        except Exception as exc:  # noqa: BLE001 - one record never stops the fetch loop
            logger.warning("admission of %s[%d]@%d failed: %r", source.tp.topic,
                           source.tp.partition, source.offset, exc)
            await self._rejector.reject(source, "admission_error", exc, header, task)

    async def _route(self, decoded: Mapping[str, Any], header: RequestHeader, source: Source,
                     size: int, served: ServedModels) -> None:
        model = served.resolve(header.model, header.model_version, header.request_id)
        check_request_size(size, model.caps)
        item = validate_request(decoded, model.limits, source.consumed_at_ms)
        reply_topic = await self._replies.resolve(header.reply_topic)
        now_epoch, now_mono = epoch_ms(), mono_ms()
        if item.is_expired(now_epoch):
            result = expired_result(header, worker_id=self._worker_id,
                                    completed_at_ms=int(now_epoch))
            job = Job(item, source, 0, now_mono, reply_topic=reply_topic,
                      trace=self._trace(header, source, model))
            await self._publish(result, job, None, None)
            return
        tokens = count_input_tokens(item.input, model.runner.count_tokens,
                                    model.runner.max_input_tokens)
        deadline = deadline_to_mono(item.deadline_ms, epoch_now_ms=now_epoch,
                                    mono_now_ms=now_mono)
        job = Job(item, source, tokens, mono_ms(), deadline, reply_topic,
                  self._trace(header, source, model))
        completion = self._lanes[model.key].admit(job)
        if completion is not None:
            self._observer.shed(model.name)
            late_by = completion - mono_ms()
            result = shed_result(header, worker_id=self._worker_id,
                                 completed_at_ms=int(epoch_ms()),
                                 estimated_completion_ms=epoch_ms() + late_by)
            await self._publish(result, job, None, None)

    def _trace(self, header: RequestHeader, source: Source,
               model: ServedModel) -> RequestTrace | None:
        """The request span (child of the client's trace context), only when tracing is on."""
        if self._tracer is None:
            return None
        return self._tracer.request(source.headers, header.request_id, model.name,
                                    header.created_at_ms, source.consumed_at_ms)
