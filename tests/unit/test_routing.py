"""Canary routing: weighted, deterministic by request id."""

from __future__ import annotations

import math
from collections import Counter

from streams.policy.routing import VersionRouter, unit_interval


def test_no_weights_means_the_default_takes_everything() -> None:
    router = VersionRouter("v1", {"v1": 0.0, "v2": 0.0})
    assert {router.pick(f"r{i}") for i in range(200)} == {"v1"}
    assert router.split == {"v1": 1.0}


def test_ninety_ten_split_is_within_binomial_bounds() -> None:
    router = VersionRouter("stable", {"stable": 9, "canary": 1})
    assert router.split == {"canary": 0.1, "stable": 0.9}
    counts = Counter(router.pick(f"request-{i}") for i in range(1000))
    sigma = math.sqrt(1000 * 0.1 * 0.9)
    assert abs(counts["canary"] - 100) <= 4 * sigma
    assert counts["canary"] + counts["stable"] == 1000


def test_the_same_request_always_lands_on_the_same_version() -> None:
    router = VersionRouter("a", {"a": 1, "b": 1})
    assert all(router.pick(f"id{i}") == router.pick(f"id{i}") for i in range(100))
    assert {router.pick(f"id{i}") for i in range(100)} == {"a", "b"}


def test_unit_interval_is_spread_over_zero_to_one() -> None:
    points = [unit_interval(f"x{i}") for i in range(2000)]
    assert all(0.0 <= p < 1.0 for p in points)
    deciles = Counter(int(p * 10) for p in points)
    assert all(150 <= deciles[d] <= 250 for d in range(10))
