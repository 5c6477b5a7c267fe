"""Where a request may ask its result to go: an allow-list, then a bounded availability check.

`reply_topic` is client-controlled, and the worker publishes with its own credentials, so it is
never a free string:
- allowed: no reply topic or the results topic itself (the default), or a topic whose name
  starts with the configured prefix (`STREAMSERVE_REPLY_TOPIC_PREFIX`, default
  `inference.replies.`; empty = reply topics off) and is a legal Kafka topic name;
- never: internal topics (`__...`), the requests, DLQ or tokens topics.
An allowed topic must also exist and let us write. Existence is read from one metadata request
for all topics, repeated at most every `refresh_s`, and bounded by `timeout_s`; so a stream of
requests naming topics that do not exist costs one metadata round trip per `refresh_s`, never
the producer's 40 s metadata wait per record. A topic that refused a write (authorization) is
remembered for `refused_ttl_s`, in a bounded table.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from streams.errors import InvalidRequest

_LEGAL_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
MAX_REFUSED = 1024


class ReplyPolicy:
    """The allow-list (pure)."""

    def __init__(self, results_topic: str, prefix: str, forbidden: set[str]) -> None:
        self.results_topic = results_topic
        self.prefix = prefix
        self._forbidden = forbidden - {results_topic}

    def target(self, reply_topic: str | None) -> str:
        """The topic to publish on; InvalidRequest(reply_topic_not_allowed) when not allowed."""
        if not reply_topic or reply_topic == self.results_topic:
            return self.results_topic
        if (not self.prefix or not reply_topic.startswith(self.prefix)
                or reply_topic == self.prefix or not _LEGAL_TOPIC.match(reply_topic)
                or reply_topic.startswith("__") or reply_topic in self._forbidden
                or reply_topic in {".", ".."}):
            shown = reply_topic[:80] + ("…" if len(reply_topic) > 80 else "")
            allowed = (f"the results topic or a topic starting with {self.prefix!r}"
                       if self.prefix else "the results topic only")
            raise InvalidRequest("reply_topic_not_allowed",
                                 f"reply_topic {shown!r} is not allowed (allowed: {allowed})")
        return reply_topic


class ReplyTopics:
    """The allow-list plus which allowed topics exist and accept our writes."""

    def __init__(self, policy: ReplyPolicy, list_topics: Callable[[], Awaitable[set[str]]], *,
                 refresh_s: float = 5.0, timeout_s: float = 2.0,
                 refused_ttl_s: float = 30.0) -> None:
        self.policy = policy
        self._list_topics = list_topics
        self._refresh_s = refresh_s
        self._timeout_s = timeout_s
        self._refused_ttl_s = refused_ttl_s
        self._known: set[str] = set()
        self._listed_at = -float("inf")  # monotonic seconds of the last listing
        self._listing: asyncio.Task[None] | None = None
        self._refused: OrderedDict[str, float] = OrderedDict()  # topic -> refused until

    async def resolve(self, reply_topic: str | None) -> str:
        """The topic for this request's result, or InvalidRequest with code
        `reply_topic_not_allowed` / `reply_topic_unavailable`."""
        topic = self.policy.target(reply_topic)
        if topic == self.policy.results_topic:
            return topic
        until = self._refused.get(topic)
        if until is not None:
            if time.monotonic() < until:
                raise _unavailable(topic, "it refused our last write")
            del self._refused[topic]
        if topic not in self._known and time.monotonic() - self._listed_at >= self._refresh_s:
            await self._refresh()
        if topic not in self._known:
            raise _unavailable(topic, "it does not exist (or we may not see it)")
        return topic

    def refused(self, topic: str) -> None:
        """A write to `topic` was refused: refuse it at admission for a while."""
        self._known.discard(topic)
        self._refused[topic] = time.monotonic() + self._refused_ttl_s
        self._refused.move_to_end(topic)
        while len(self._refused) > MAX_REFUSED:
            self._refused.popitem(last=False)

    async def _refresh(self) -> None:
        if self._listing is None or self._listing.done():
            self._listing = asyncio.create_task(self._list(), name="reply-topics-listing")
        # On a timeout the listing goes on in the background; this request is refused for now.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._listing), self._timeout_s)

    async def _list(self) -> None:
        try:
            topics = await self._list_topics()
        except Exception:  # noqa: BLE001 - brokers unreachable: keep what we knew, retry later
            topics = None
        self._listed_at = time.monotonic()
        if topics is not None:
            self._known = {t for t in topics if t.startswith(self.policy.prefix)} \
                if self.policy.prefix else set()


def _unavailable(topic: str, why: str) -> InvalidRequest:
    return InvalidRequest("reply_topic_unavailable", f"reply topic {topic!r} is unavailable: {why}")
