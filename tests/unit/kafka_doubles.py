"""A stand-in for aiokafka's producer, for unit tests of the worker's failure handling.

It reproduces the checks aiokafka's `send()` makes itself (neither key nor value → AssertionError;
a record over `max_request_size` → MessageSizeTooLargeError, both raised from `send()`, not
through the future) and lets a test decide, per record, to raise from `send()` or to fail the
acknowledgement. Real-broker behaviour is covered by the integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


# (record) -> None (accept), ("raise", error) or ("fail", error)
Rule = Callable[[Sent], tuple[str, BaseException] | None]


@dataclass
class FakeProducer:
    max_request_size: int = 1024 * 1024
    rules: list[Rule] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)  # acknowledged records, in order
    attempts: list[Sent] = field(default_factory=list)  # every send() call

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        assert not (value is None and key is None), "Need at least one: key or value"
        record = Sent(topic, key, value, list(headers or []))
        self.attempts.append(record)
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in
                                                         record.headers)
        if size > self.max_request_size:
            raise MessageSizeTooLargeError(f"The message is {size} bytes")
        verdict = next((v for rule in self.rules if (v := rule(record)) is not None), None)
        if verdict is not None and verdict[0] == "raise":
            raise verdict[1]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def settle() -> None:
            if verdict is not None:
                future.set_exception(verdict[1])
            else:
                self.sent.append(record)
                future.set_result(None)

        asyncio.get_running_loop().call_soon(settle)
        return future

    async def flush(self) -> None:
        await asyncio.sleep(0)

    def on(self, topic: str, action: str, error: BaseException,
           when: Callable[[Sent], bool] = lambda r: True) -> None:
        self.rules.append(lambda r: (action, error) if r.topic == topic and when(r) else None)

    def topics(self) -> list[str]:
        return [r.topic for r in self.sent]
