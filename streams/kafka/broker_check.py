"""Is Kafka there? One clear line when it is not, before anything expensive starts.

aiokafka reports a missing broker as a traceback from `start()` and leaves the half-built
client to warn "Unclosed AIOKafkaProducer" when it is collected. Every command that talks to
Kafka starts its clients through `start_or_explain`, so a missing broker reads as one line that
names the address tried and how to get one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
)

from streams.config import Settings
from streams.errors import BrokerUnreachable
from streams.kafka.options import security_options


class Startable(Protocol):
    async def start(self) -> None: ...


def unreachable(bootstrap_servers: str) -> BrokerUnreachable:
    return BrokerUnreachable(
        f"no Kafka broker answers at {bootstrap_servers}: start one with `streamserve stack "
        "up` and export the STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS it prints, or set "
        "STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS to your cluster's address")


async def start_or_explain(client: Startable, bootstrap_servers: str,
                           close: Callable[[], Awaitable[object]]) -> None:
    """`await client.start()`; when no broker answers, close the client and raise
    `BrokerUnreachable` (closing keeps aiokafka from warning about an unclosed client)."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        await close()
        raise unreachable(bootstrap_servers) from exc


async def check_broker(settings: Settings, group_id: str | None = None,
                       timeout_s: float = 30.0) -> None:
    """Raise `BrokerUnreachable` unless a broker answers; with `group_id`, also wait until the
    group has a coordinator.

    On a fresh broker the first FindCoordinator creates `__consumer_offsets`, and for a moment
    the answer is GroupCoordinatorNotAvailable: aiokafka's consumer logs that as an ERROR and
    marks the coordinator dead twice before its join succeeds. Asking first, and waiting for
    the answer, lets the worker's first join go through quietly.
    """
    bootstrap = settings.kafka_bootstrap_servers
    admin = AIOKafkaAdminClient(**security_options(settings))
    await start_or_explain(admin, bootstrap, admin.close)
    try:
        if group_id is not None:
            await _wait_for_coordinator(admin, group_id, timeout_s)
    finally:
        await admin.close()


async def _wait_for_coordinator(admin: AIOKafkaAdminClient, group_id: str,
                                timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await admin.find_coordinator(group_id)
            return
        except GroupCoordinatorNotAvailableError:
            if time.monotonic() > deadline:
                raise BrokerUnreachable(
                    f"the broker has no coordinator for group {group_id!r} after "
                    f"{timeout_s:.0f}s (is __consumer_offsets under-replicated?)") from None
            await asyncio.sleep(0.2)
        except KafkaError:
            return  # e.g. not authorized for the group: the consumer reports it in its words
