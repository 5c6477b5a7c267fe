"""The autoscaling decision (pure): cost-weighted replicas, KEDA's rule, bounds, stabilisation."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.autoscale.decision import (
    Autoscaler,
    Bounds,
    Load,
    Stabilizer,
    backlog_work_s,
    desired_replicas,
    keda_replicas,
    mean_cost_s,
)

# The worked example of docs/scaling.md: embed 5 ms/request, generate 160 ms/request.
COST = {"minilm": 0.005, "smollm2": 0.160}
BOUNDS = Bounds(min_replicas=1, max_replicas=12, partitions=12, target_drain_s=10.0)
EMBED_TUNED = 2000  # a KEDA lagThreshold tuned for embeds: 1 replica clears 2000 in 10 s


def load(lag: int, mix: dict[str, float], **extra: float) -> Load:
    return Load(lag=lag, mix=mix, cost_s=COST, replica_throughput=extra.pop("thr", 1.0),
                **extra)


def test_the_decision_modules_import_nothing_with_io() -> None:
    code = (
        "import sys\n"
        "import streams.autoscale.decision, streams.autoscale.estimate\n"
        "bad = {'faust', 'aiokafka', 'kafka', 'clickhouse_connect', 'chdb', 'prometheus_client',"
        " 'urllib.request', 'subprocess', 'torch'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_generate_backlog_needs_ten_replicas_where_keda_says_one() -> None:
    proposal = desired_replicas(load(600, {"smollm2": 1.0}), BOUNDS, EMBED_TUNED)
    assert proposal.work_s == pytest.approx(96.0)  # 600 x 0.16 s
    assert (proposal.raw, proposal.replicas) == (10, 10)  # ceil(96 / (1.0 x 10))
    assert keda_replicas(600, EMBED_TUNED, BOUNDS) == 1  # ceil(600 / 2000): drains in 96 s


def test_mixed_backlog_weighs_each_model_by_its_cost() -> None:
    mix = {"minilm": 0.9, "smollm2": 0.1}
    assert mean_cost_s(mix, COST) == pytest.approx(0.0205)  # 0.9 x 0.005 + 0.1 x 0.16
    proposal = desired_replicas(load(3000, mix), BOUNDS, EMBED_TUNED)
    assert proposal.work_s == pytest.approx(61.5)
    assert proposal.replicas == 7  # ceil(61.5 / 10)
    assert keda_replicas(3000, EMBED_TUNED, BOUNDS) == 2


def test_embed_backlog_needs_few_replicas_where_a_generate_tuned_keda_maxes_out() -> None:
    proposal = desired_replicas(load(5000, {"minilm": 1.0}), BOUNDS, 62)
    assert proposal.work_s == pytest.approx(25.0)
    assert proposal.replicas == 3  # ceil(25 / 10)
    assert keda_replicas(5000, 62, BOUNDS) == 12  # ceil(5000 / 62) = 81, capped at max


def test_measured_throughput_divides_the_work() -> None:
    proposal = desired_replicas(load(600, {"smollm2": 1.0}, thr=0.8), BOUNDS, EMBED_TUNED)
    assert proposal.replicas == 12  # ceil(96 / (0.8 x 10)) = 12


def test_bounds_min_max_and_partitions() -> None:
    few_partitions = Bounds(min_replicas=1, max_replicas=8, partitions=4, target_drain_s=10.0)
    assert desired_replicas(load(600, {"smollm2": 1.0}), few_partitions, 100).replicas == 4
    at_least_two = Bounds(min_replicas=2, max_replicas=8, partitions=8, target_drain_s=10.0)
    assert desired_replicas(load(0, {"minilm": 1.0}), at_least_two, 100).replicas == 2
    assert keda_replicas(0, 100, at_least_two) == 2
    assert keda_replicas(10_000, 100, at_least_two) == 8
    assert Bounds(5, 8, 3, 1.0).clamp(0) == 3  # min above the partitions: partitions win


def test_steady_arrivals_keep_replicas_when_the_backlog_is_gone() -> None:
    # 300 embeds/s x 5 ms = 1.5 model-s/s: two replicas, whatever the drain target.
    proposal = desired_replicas(load(0, {"minilm": 1.0}, arrival_per_s=300.0), BOUNDS, 100)
    assert proposal.raw == 2
    # backlog + arrivals: (1000 x 0.005 + 1.5 x 10) / 10 = 2.0 -> exactly 2, no float creep
    assert desired_replicas(load(1000, {"minilm": 1.0}, arrival_per_s=300.0), BOUNDS,
                            100).raw == 2


def test_no_cost_measured_falls_back_to_keda() -> None:
    proposal = desired_replicas(Load(lag=450, mix={}, cost_s={}, replica_throughput=1.0),
                                BOUNDS, 100)
    assert (proposal.replicas, proposal.work_s) == (5, None)
    assert "KEDA rule" in proposal.reason


def test_unknown_model_is_priced_at_the_dearest_and_empty_mix_evenly() -> None:
    assert mean_cost_s({"new": 1.0}, COST) == pytest.approx(0.16)
    assert mean_cost_s({}, COST) == pytest.approx((0.005 + 0.16) / 2)
    assert backlog_work_s(load(100, {"minilm": 0.5, "new": 0.5})) == pytest.approx(8.25)


def test_scale_up_at_once_scale_down_after_a_whole_window() -> None:
    stab = Stabilizer(window_s=10.0)
    assert stab.apply(0.0, current=1, desired=3) == 3  # up: immediately
    assert stab.apply(2.0, current=3, desired=1) == 3  # window not covered yet
    assert stab.apply(10.0, current=3, desired=1) == 3  # 3 held at t in [0, 2): inside
    assert stab.apply(12.0, current=3, desired=1) == 1  # [2, 12] all 1


def test_flapping_desired_values_do_not_flap_replicas() -> None:
    stab = Stabilizer(window_s=10.0)
    current, replicas = 1, []
    # desired alternates 4/1 every 2 s until t=18 (last 4 at t=16), then stays 1
    for step in range(20):
        now = 2.0 * step
        desired = 4 if now <= 18 and step % 2 == 0 else 1
        current = stab.apply(now, current, desired)
        replicas.append(current)
    # the 4 of t=16 held until t=18, so the window [t-10, t] is all 1 only from t=28
    assert replicas == [4] * 14 + [1] * 6
    assert replicas.index(1) == 14  # t=28


def test_partial_scale_down_to_the_window_maximum() -> None:
    stab = Stabilizer(window_s=4.0)
    assert [stab.apply(t, 4, d) for t, d in [(0, 4), (2, 3), (4, 2), (6, 2)]] == [4, 4, 4, 3]
    # at t=6 the window [2, 6] saw 3 and 2: down to 3, not 2


def test_autoscaler_reports_both_rules_and_the_hold() -> None:
    scaler = Autoscaler(BOUNDS, window_s=30.0, lag_threshold=EMBED_TUNED)
    up = scaler.decide(0.0, 1, load(600, {"smollm2": 1.0}))
    assert (up.replicas, up.keda) == (10, 1)
    held = scaler.decide(5.0, 10, load(0, {"smollm2": 1.0}))
    assert (held.replicas, held.proposal.replicas) == (10, 1)
    assert "held at 10" in held.reason and "KEDA rule: 1" in held.reason
