"""reply_topic is an allow-list, and an unknown topic costs at most one bounded metadata look-up
per refresh interval, never the producer's metadata timeout per record."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.errors import InvalidRequest
from streams.worker.replies import ReplyPolicy, ReplyTopics

POLICY = ReplyPolicy("inference.results", "inference.replies.",
                     {"inference.requests", "inference.dlq", "inference.tokens"})


@pytest.mark.parametrize("topic", [None, "", "inference.results"])
def test_no_reply_topic_means_the_results_topic(topic: str | None) -> None:
    assert POLICY.target(topic) == "inference.results"


@pytest.mark.parametrize("topic", [
    "inference.requests", "inference.dlq", "inference.tokens", "__consumer_offsets",
    "__transaction_state", "other.topic", "inference.replies.", "inference.replies.a b",
    "inference.replies.ä", "inference.replies." + "x" * 240, "inference.replies.a/b",
    "inference.replies.\x00", "INFERENCE.REPLIES.x", "__inference.replies.x",
])
def test_anything_else_is_not_allowed(topic: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        POLICY.target(topic)
    assert info.value.code == "reply_topic_not_allowed"
    assert len(info.value.message) < 250  # a 250-char name is not echoed whole


def test_prefixed_legal_names_are_allowed() -> None:
    assert POLICY.target("inference.replies.tenant-a") == "inference.replies.tenant-a"
    assert POLICY.target("inference.replies.t_1.x") == "inference.replies.t_1.x"


def test_an_empty_prefix_turns_reply_topics_off() -> None:
    policy = ReplyPolicy("res", "", set())
    assert policy.target(None) == "res"
    with pytest.raises(InvalidRequest):
        policy.target("anything")


class Listing:
    def __init__(self, topics: set[str], delay_s: float = 0.0) -> None:
        self.topics, self.delay_s, self.calls = topics, delay_s, 0

    async def __call__(self) -> set[str]:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return set(self.topics)


async def test_an_existing_reply_topic_resolves_and_a_missing_one_is_unavailable() -> None:
    listing = Listing({"inference.replies.a", "inference.results"})
    replies = ReplyTopics(POLICY, listing, refresh_s=60)
    assert await replies.resolve("inference.replies.a") == "inference.replies.a"
    with pytest.raises(InvalidRequest) as info:
        await replies.resolve("inference.replies.missing")
    assert info.value.code == "reply_topic_unavailable"
    assert listing.calls == 1  # the second look-up came within refresh_s: no new listing


async def test_a_flood_of_unknown_topics_costs_one_listing_per_interval() -> None:
    listing = Listing(set())
    replies = ReplyTopics(POLICY, listing, refresh_s=60)
    started = time.monotonic()
    for i in range(500):
        with pytest.raises(InvalidRequest):
            await replies.resolve(f"inference.replies.nope-{i}")
    assert listing.calls == 1 and time.monotonic() - started < 1.0


async def test_a_slow_listing_is_bounded_by_the_timeout() -> None:
    listing = Listing({"inference.replies.a"}, delay_s=5.0)
    replies = ReplyTopics(POLICY, listing, refresh_s=60, timeout_s=0.05)
    started = time.monotonic()
    with pytest.raises(InvalidRequest):
        await replies.resolve("inference.replies.a")
    assert time.monotonic() - started < 1.0


async def test_a_topic_that_refused_a_write_is_refused_at_admission_for_a_while() -> None:
    replies = ReplyTopics(POLICY, Listing({"inference.replies.a"}), refresh_s=0,
                          refused_ttl_s=60)
    assert await replies.resolve("inference.replies.a") == "inference.replies.a"
    replies.refused("inference.replies.a")
    with pytest.raises(InvalidRequest) as info:
        await replies.resolve("inference.replies.a")
    assert "refused" in info.value.message
