"""The ideal-worker latency model behind the latency stage's reference figure."""

from __future__ import annotations

import pytest

from bench.queue_model import simulate


def test_a_lone_request_waits_max_wait_then_one_batch() -> None:
    ideal = simulate(0.01, lambda size: 50.0, max_batch=32, max_wait_ms=10.0, requests=200)
    assert ideal.p50_ms == pytest.approx(60.0)
    assert ideal.p99_ms == pytest.approx(60.0)
    assert ideal.batch_size_mean == 1.0


def test_flat_batch_time_meets_the_goal_structurally() -> None:
    # A GPU-like model (batch time independent of size): nobody waits more than the batch
    # computing ahead of it plus its own, so p99 <= max_wait + 2 x batch time.
    ideal = simulate(70.0, lambda size: 100.0, max_batch=64, max_wait_ms=10.0)
    assert ideal.p99_ms <= ideal.bound_ms
    assert ideal.p99_ms > 150.0  # and it does wait for the batch ahead


def test_batch_time_growing_with_size_swings_and_misses_the_goal() -> None:
    # A CPU-like model at 70% load (10 ms per item: capacity 100/s): batch sizes swing with
    # the Poisson arrivals, so the slowest requests sit behind and in the biggest batches.
    ideal = simulate(70.0, lambda size: 5.0 + 10.0 * size, max_batch=32, max_wait_ms=10.0)
    assert ideal.p99_ms > ideal.bound_ms
    assert 1.0 < ideal.batch_size_mean < 32.0


def test_the_batch_cap_is_respected_and_nothing_is_lost() -> None:
    sizes: list[int] = []

    def batch_ms(size: float) -> float:
        sizes.append(int(size))
        return 1.0 + 2.0 * size

    simulate(400.0, batch_ms, max_batch=8, max_wait_ms=5.0, requests=5000)
    assert max(sizes) == 8
    assert sum(sizes) == 5000
