"""Early load shedding decisions (pure)."""

from __future__ import annotations

from streams.policy.shedding import ServiceTimeEstimate, misses_deadline


def test_no_estimate_before_the_first_batch_means_admit() -> None:
    estimate = ServiceTimeEstimate()
    assert estimate.completion_ms(0, queued_ahead=100, max_batch_size=8, busy=True) is None
    assert not misses_deadline(10.0, None)


def test_completion_counts_queued_batches_the_running_one_and_its_own() -> None:
    estimate = ServiceTimeEstimate()
    estimate.observe(100.0)
    assert estimate.completion_ms(1000, queued_ahead=0, max_batch_size=8, busy=False) == 1100
    assert estimate.completion_ms(1000, queued_ahead=16, max_batch_size=8, busy=True) == 1400


def test_average_moves_towards_new_observations() -> None:
    estimate = ServiceTimeEstimate(alpha=0.5)
    estimate.observe(100.0)
    estimate.observe(200.0)
    assert estimate.batch_ms == 150.0


def test_shed_only_when_the_estimate_is_past_the_deadline() -> None:
    assert misses_deadline(1000.0, 1001.0)
    assert not misses_deadline(1000.0, 1000.0)
    assert not misses_deadline(None, 5000.0)
