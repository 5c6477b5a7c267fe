"""Capacity planning (pure): the laws, their fits on synthetic curves with known σ and κ and on a
real two-point bench measurement, the plan's answers, and the CLI's parsing."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from streams.analytics.capacity.laws import (
    Point,
    amdahl,
    fit_amdahl,
    fit_gustafson,
    fit_usl,
    gustafson,
    karp_flatt,
    usl,
    usl_peak,
)
from streams.analytics.capacity.plan import Scaling, answer, mixed, plan_text, workers_for
from streams.analytics.capacity.report import parse_counts, parse_mix, plan_report
from streams.analytics.capacity.sources import (
    Measured,
    MinuteLoad,
    bench_points,
    from_bench,
    newest_bench,
    peak_rates,
)
from streams.config import Settings
from streams.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
# `streamserve bench --quick`, 2026-11-25 16:22 (README): 1 -> 2 workers x1.79 MiniLM, x2.49 no-op
TWO_POINT_BENCH = REPO / "bench" / "results" / "20261125T162236Z.json"


def curve(lam: float, sigma: float, kappa: float, counts: list[int],
          noise: float = 0.0, seed: int = 7) -> list[Point]:
    rng = random.Random(seed)
    return [Point(n, lam * usl(sigma, kappa, n) * (1.0 + rng.uniform(-noise, noise)))
            for n in counts]


def test_the_laws() -> None:
    assert amdahl(0.25, 4) == pytest.approx(4 / 1.75)  # 1 / (0.25 + 0.75/4)
    assert amdahl(0.0, 8) == 8.0 and amdahl(1.0, 8) == 1.0
    assert gustafson(0.25, 4) == pytest.approx(3.25)
    assert usl(0.25, 0.0, 4) == amdahl(0.25, 4)  # κ = 0 is Amdahl
    assert usl(0.05, 0.01, 10) == pytest.approx(10 / (1 + 0.45 + 0.9))
    assert usl_peak(0.05, 0.01) == pytest.approx((0.95 / 0.01) ** 0.5)
    assert usl_peak(0.1, 0.0) == float("inf")
    # Karp–Flatt recovers Amdahl's σ at every N from the speed-up alone
    for n in (2, 4, 16):
        assert karp_flatt(amdahl(0.2, n), n) == pytest.approx(0.2)
    assert karp_flatt(2.49, 2) < 0  # superlinear


@pytest.mark.parametrize(("sigma", "kappa"), [(0.05, 0.002), (0.2, 0.0), (0.01, 0.02)])
def test_usl_recovers_known_contention_and_coherency(sigma: float, kappa: float) -> None:
    fit = fit_usl(curve(100.0, sigma, kappa, [1, 2, 4, 8, 16, 32]))
    assert fit.sigma == pytest.approx(sigma, abs=1e-4)
    assert fit.kappa == pytest.approx(kappa, abs=1e-5)
    assert fit.lam == pytest.approx(100.0, rel=1e-4)
    assert fit.r2 == pytest.approx(1.0) and not fit.exact and fit.free == 3


def test_usl_with_measurement_noise_and_without_a_one_worker_run() -> None:
    noisy = fit_usl(curve(250.0, 0.08, 0.003, [1, 2, 3, 4, 6, 8, 12, 16], noise=0.02))
    assert noisy.sigma == pytest.approx(0.08, abs=0.03)
    assert noisy.kappa == pytest.approx(0.003, abs=0.0015)
    assert noisy.r2 is not None and noisy.r2 > 0.98
    assert max(abs(r) for r in noisy.residuals) < 0.05 * 250 * 6  # within the noise
    no_one = fit_usl(curve(50.0, 0.1, 0.001, [2, 4, 8, 16]))  # λ is fitted, not read off N=1
    assert (no_one.sigma, no_one.kappa) == (pytest.approx(0.1, abs=1e-3),
                                           pytest.approx(0.001, abs=1e-4))


def test_amdahl_and_gustafson_fits() -> None:
    points = [Point(n, 10.0 * amdahl(0.1, n)) for n in (1, 2, 4, 8)]
    assert fit_amdahl(points).sigma == pytest.approx(0.1, abs=1e-6)
    assert fit_usl(points).kappa == pytest.approx(0.0, abs=1e-6)
    linear = [Point(n, 10.0 * gustafson(0.3, n)) for n in (1, 2, 4, 8)]
    assert fit_gustafson(linear).sigma == pytest.approx(0.3, abs=1e-6)
    with pytest.raises(ValueError, match="two worker counts"):
        fit_usl([Point(1, 5.0), Point(1, 6.0)])


def test_the_real_two_point_measurement_is_fitted_exactly_and_said_to_be_unvalidated() -> None:
    data = json.loads(TWO_POINT_BENCH.read_text())
    minilm = bench_points(data, "minilm")
    assert [p.workers for p in minilm] == [1, 2]
    speedup = minilm[1].rate / minilm[0].rate
    assert speedup == pytest.approx(1.795, abs=0.001)
    fit = fit_usl(minilm)
    assert fit.free == 2 and fit.kappa == 0.0  # κ cannot be told from σ with two counts
    assert fit.sigma == pytest.approx(karp_flatt(speedup, 2), abs=1e-6)  # σ = e = 0.114
    assert fit.sigma == pytest.approx(0.114, abs=0.001) and fit.exact
    text = plan_text([(1.0, Scaling.of(from_bench(TWO_POINT_BENCH, "minilm")))], [1, 2, 4], 4,
                     None, None)
    assert "x1.79, Karp–Flatt e = 0.114" in text
    assert "exact: 2 parameters through 2 points, therefore not validated" in text
    assert "κ 0 (κ needs 3 worker counts)" in text
    assert "serial fraction 0.994" not in text and "stage" in text


def test_a_superlinear_two_point_measurement_clamps_sigma_and_shows_the_misfit() -> None:
    noop = Scaling.of(from_bench(TWO_POINT_BENCH, "noop"))
    assert noop.usl.sigma == 0.0 and not noop.usl.exact
    text = plan_text([(1.0, noop)], [1, 2], 4, None, None)
    assert "x2.49, Karp–Flatt e = -0.195" in text
    assert "Karp–Flatt e < 0" in text and "R² " in text


def _scaling(points: list[Point]) -> Scaling:
    return Scaling.of(Measured(tuple(points), "synthetic", {"m": 1.0}))


def test_answers_within_beyond_and_out_of_reach() -> None:
    linear = _scaling([Point(1, 100.0), Point(2, 200.0), Point(4, 400.0)])
    assert workers_for(350.0, linear.usl.rate) == 4
    within = answer(350.0, linear.usl.rate, partitions=8, workers_per_gpu=2)
    assert within.startswith("target 350 req/s: N = 4 worker(s) = 2 GPU(s) at 2 worker(s)")
    beyond = answer(1000.0, linear.usl.rate, partitions=8, workers_per_gpu=None)
    assert "needs N = 10 workers" in beyond and "raise the partitions to >= 10" in beyond
    assert "with 8 at most 800.0 req/s (N = 8)" in beyond
    peaked = _scaling(curve(100.0, 0.05, 0.01, [1, 2, 4, 8, 16]))
    n_star = usl_peak(peaked.usl.sigma, peaked.usl.kappa)
    out = answer(2000.0, peaked.usl.rate, 64, None, n_star)
    assert "out of reach: the prediction peaks at" in out and "N* = 9.7" in out


def test_a_mix_shares_each_workers_time() -> None:
    fast = _scaling([Point(1, 300.0), Point(2, 600.0)])
    slow = _scaling([Point(1, 100.0), Point(2, 200.0)])
    rate = mixed([(0.5, fast.usl.rate), (0.5, slow.usl.rate)])
    assert rate(1) == pytest.approx(150.0)  # 1 / (0.5/300 + 0.5/100)
    text = plan_text([(0.5, fast), (0.5, slow)], [1, 2], 4, 250.0, None)
    assert "[50% of the target mix] source: synthetic" in text
    assert "target 250 req/s: N = 2 worker(s), predicted 300.0 req/s" in text


def test_request_log_minutes_give_peak_rates_per_worker_count() -> None:
    t0 = datetime(2025, 1, 1, 12, 0)
    minutes = [MinuteLoad(t0, 1, 600, 60.0), MinuteLoad(t0.replace(minute=1), 1, 300, 10.0),
               MinuteLoad(t0.replace(minute=2), 2, 1200, 20.0)]
    assert peak_rates(minutes) == {1: 30.0, 2: 60.0}
    assert peak_rates([MinuteLoad(t0, 1, 5, 0.2)]) == {1: 5.0}  # a span under 1 s counts as 1 s


def test_bench_sources_and_plan_report_errors(tmp_path: Path) -> None:
    one = tmp_path / "20990101T000000Z.json"
    one.write_text(json.dumps({"scaling": {"minilm": {"one_worker": {"median": 60.0}}}}))
    report = plan_report(Settings(), timedelta(hours=1), [1, 2],
                         bench=str(one))
    assert "throughput at 1 worker count(s) (N=1: 60.0 req/s); a scaling fit needs two" in report
    with pytest.raises(ConfigError, match="no scaling stage for model 'bert'"):
        from_bench(TWO_POINT_BENCH, "bert")
    more = tmp_path / "20990102T000000Z.json"
    more.write_text(json.dumps({"scaling": {"minilm": {"by_workers": {
        "1": {"median": 10.0}, "2": {"median": 19.0}, "4": {"median": 35.0}}}}}))
    assert newest_bench(tmp_path, "minilm") == more
    assert [p.workers for p in from_bench(more, "minilm").points] == [1, 2, 4]
    with pytest.raises(ConfigError, match="no bench results"):
        newest_bench(tmp_path, "noop")
    with pytest.raises(ConfigError, match="--target-rps"):
        plan_report(Settings(), timedelta(hours=1), [1], 0.0, str(more))


def test_parse_counts_and_mix() -> None:
    assert parse_counts("8, 1,2,2") == [1, 2, 8]
    for bad in ("", "0,1", "a,b"):
        with pytest.raises(ConfigError):
            parse_counts(bad)
    assert parse_mix("minilm") == [("minilm", 1.0)]
    assert parse_mix("minilm=3, noop=1") == [("minilm", 0.75), ("noop", 0.25)]
    for bad in ("", "minilm=0", "minilm=x", "a=1,a=2", "=1"):
        with pytest.raises(ConfigError):
            parse_mix(bad)
