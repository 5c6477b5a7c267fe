"""Publish inference requests and await their results by request id.

One shared results consumer per client (no consumer group: it reads every partition of the
results topic from the moment the client starts) resolves one future per request id. Results
are at-least-once: a duplicate for an id already answered is ignored. With tracing on
(`STREAMSERVE_TRACING`, or a `tracer` given), each request is published inside a `send` span
(child of the caller's current span) whose W3C context rides in the record's headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.config import Settings
from streams.errors import DecodeError, StreamserveError
from streams.kafka.broker_check import start_or_explain
from streams.kafka.options import producer_options, reader_options
from streams.protocol.chunks import closing_chunk_of
from streams.tracing.setup import open_tracing
from streams.wire.codec import RecordCodec, request_codec, result_codec, token_codec
from streams.wire.registry_catalog import RegistrySchemas, open_codecs

if TYPE_CHECKING:
    from streams.tracing.spans import Tracer

logger = logging.getLogger(__name__)


RECENT_RESULTS = 10_000  # answered requests whose result() stays available


class ResultTimeout(StreamserveError):
    code = "timeout"
    retriable = True


def new_request(model: str, task: str, *, text: str | None = None,
                messages: Iterable[Mapping[str, str]] = (), labels: Iterable[str] = (),
                parameters: Mapping[str, Any] | None = None, request_id: str | None = None,
                deadline_ms: int | None = None, priority: int = 0, model_version: str | None = None,
                reply_topic: str | None = None, stream: bool = False,
                attributes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A complete InferenceRequest record with defaults filled in."""
    params = {"max_new_tokens": None, "temperature": None, "top_p": None, "stop": None,
              "seed": None, **(parameters or {})}
    return {
        "request_id": request_id or uuid.uuid4().hex, "model": model,
        "model_version": model_version, "task": task, "text": text,
        "messages": [dict(m) for m in messages], "labels": list(labels), "parameters": params,
        "stream": stream, "deadline": deadline_ms, "priority": priority,
        "reply_topic": reply_topic, "created_at": int(time.time() * 1000),
        "attributes": dict(attributes or {}),
    }


class InferenceClient:
    """`async with InferenceClient(settings) as client: result = await client.infer(req)`."""

    def __init__(self, settings: Settings, tracer: Tracer | None = None) -> None:
        self._settings = settings
        self._tracer = tracer if tracer is not None else open_tracing(settings.tracing)
        self._requests: RecordCodec = request_codec()
        self._results: RecordCodec = result_codec()
        self._producer = AIOKafkaProducer(**producer_options(settings))
        self._consumer = AIOKafkaConsumer(**{**reader_options(settings), "group_id": None,
                                             "enable_auto_commit": False})
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._chunks = token_codec()
        self._streams: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._next_seq: dict[str, int] = {}
        self._recent: OrderedDict[str, asyncio.Future[dict[str, Any]]] = OrderedDict()
        self.duplicates = 0
        self._reader: asyncio.Task[None] | None = None
        self._schemas: RegistrySchemas | None = None

    async def __aenter__(self) -> InferenceClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        codecs, self._schemas = await open_codecs(self._settings)
        self._requests, self._results, self._chunks = codecs.request, codecs.result, codecs.token
        bootstrap = self._settings.kafka_bootstrap_servers
        await start_or_explain(self._producer, bootstrap, self._close_clients)
        await start_or_explain(self._consumer, bootstrap, self._close_clients)
        topic = self._settings.results_topic
        partitions = await self._partitions_of(topic)
        if not partitions:
            await self._close_clients()
            raise StreamserveError(f"results topic {topic!r} does not exist; run "
                                   "`streamserve topics create` first")
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        tokens = self._settings.tokens_topic
        if tokens in await self._consumer.topics():  # optional: only streaming needs it
            assignment += [TopicPartition(tokens, p) for p in
                           sorted(await self._producer.partitions_for(tokens))]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_end(*assignment)
        for tp in assignment:  # pin the start now, before any request can be answered
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_results(), name="results-reader")

    async def _partitions_of(self, topic: str, timeout_s: float = 10.0) -> set[int]:
        """Partitions of `topic`; a topic created a moment ago may still be electing leaders."""
        deadline = time.monotonic() + timeout_s
        while True:
            if topic in await self._consumer.topics():
                # The producer's metadata wait is the public way to learn a topic's partitions.
                return set(await self._producer.partitions_for(topic))
            if time.monotonic() > deadline:
                return set()
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._close_clients()
        if self._tracer is not None:  # the last spans out (the exporter may block: off the loop)
            await asyncio.to_thread(self._tracer.flush)

    async def _close_clients(self) -> None:
        """Stop both clients; safe on clients that never started (aiokafka warns about
        unclosed ones when they are collected)."""
        await self._consumer.stop()
        await self._producer.stop()

    async def send(self, request: Mapping[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Publish one request; the returned future resolves with its result."""
        request_id = str(request["request_id"])
        future = self._waiting.get(request_id)
        if future is None:
            future = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        sent = await self._publish(request_id, self._requests.encode(request))
        await sent
        return future

    async def _publish(self, request_id: str, value: bytes) -> asyncio.Future[Any]:
        """Queue one request record (its acknowledgement: the returned future), in a `send`
        span whose context goes in its headers when tracing is on."""
        topic = self._settings.requests_topic
        if self._tracer is None:
            sent: asyncio.Future[Any] = await self._producer.send(topic, value,
                                                                  key=request_id.encode())
            return sent
        span = self._tracer.client_send(topic, request_id)
        try:
            sent = await self._producer.send(topic, value, key=request_id.encode(),
                                             headers=span.headers)
            return sent
        finally:
            span.end()

    async def infer(self, request: Mapping[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        future = await self.send(request)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise ResultTimeout(f"no result for {request['request_id']} within "
                                f"{timeout_s:.0f}s") from None

    async def infer_many(self, requests: Iterable[Mapping[str, Any]],
                         timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """Publish all requests (pipelined), then await every result."""
        futures = []
        for request in requests:
            request_id = str(request["request_id"])
            futures.append(self._waiting.setdefault(
                request_id, asyncio.get_running_loop().create_future()))
            await self._publish(request_id, self._requests.encode(request))
        await self._producer.flush()
        try:
            return list(await asyncio.wait_for(asyncio.gather(*futures), timeout_s))
        except TimeoutError:
            missing = sum(1 for f in futures if not f.done())
            raise ResultTimeout(f"{missing} of {len(futures)} results missing after "
                                f"{timeout_s:.0f}s") from None

    async def stream(self, request: Mapping[str, Any],
                     timeout_s: float = 120.0) -> AsyncIterator[dict[str, Any]]:
        """Publish `request` with stream=true and yield its TokenChunks in order, the final
        one last. Duplicate chunks (a worker redoing the request) are dropped by seq."""
        request_id = str(request["request_id"])
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._streams[request_id] = queue
        self._next_seq[request_id] = 0
        try:
            await self.send({**request, "stream": True})
            while True:
                try:
                    chunk = await asyncio.wait_for(queue.get(), timeout_s)
                except TimeoutError:
                    raise ResultTimeout(f"no token for {request_id} within "
                                        f"{timeout_s:.0f}s") from None
                yield chunk
                if chunk["final"]:
                    return
        finally:
            self._streams.pop(request_id, None)
            self._next_seq.pop(request_id, None)

    async def result(self, request_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The result of a request sent earlier through this client."""
        future = self._waiting.get(request_id) or self._recent.get(request_id)
        if future is None:
            raise StreamserveError(f"request {request_id} was not sent by this client "
                                   f"(or is older than its last {RECENT_RESULTS} results)")
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)

    async def _read_results(self) -> None:
        tokens_topic = self._settings.tokens_topic
        while True:
            batch = await self._consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    payload = record.value or b""
                    if self._schemas is not None and (learning := self._schemas.pending(payload)):
                        await learning  # a writer id the registry knows and we do not yet
                    if tp.topic == tokens_topic:
                        self._on_chunk(payload)
                    else:
                        self._resolve(payload)

    def _on_chunk(self, payload: bytes | None) -> None:
        try:
            chunk = self._chunks.decode(payload or b"")
        except DecodeError as exc:
            logger.warning("undecodable record on the tokens topic: %s", exc)
            return
        request_id = chunk["request_id"]
        queue = self._streams.get(request_id)
        if queue is None or chunk["seq"] != self._next_seq[request_id]:
            return  # not ours, or a duplicate from a redelivery
        self._next_seq[request_id] += 1
        queue.put_nowait(chunk)

    def _resolve(self, payload: bytes | None) -> None:
        try:
            result = self._results.decode(payload or b"")
        except DecodeError as exc:
            logger.warning("undecodable record on the results topic: %s", exc)
            return
        request_id = result["request_id"]
        if request_id in self._recent:
            self.duplicates += 1
            return
        future = self._waiting.pop(request_id, None)
        if future is not None and not future.done():
            self._recent[request_id] = future  # for result(); bounded, oldest dropped
            while len(self._recent) > RECENT_RESULTS:
                self._recent.popitem(last=False)
            future.set_result(result)
            stream = self._streams.get(request_id)
            if stream is not None and result["status"] != "ok":
                # Rejected, expired or shed before any token: end the stream with the reason.
                stream.put_nowait(closing_chunk_of(result, self._next_seq[request_id]))

