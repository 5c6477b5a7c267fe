"""Capacity planning formulas (pure): Amdahl, Gustafson, the serial/parallel split, the table."""

from __future__ import annotations

from datetime import datetime

import pytest

from streams.capacity import (
    MinuteLoad,
    StageMeans,
    amdahl,
    gustafson,
    one_worker_fraction,
    parse_counts,
    peak_rates,
    plan_table,
    workers_measured,
)
from streams.errors import ConfigError

# mean ms: kafka_wait 110 (floor 10 -> 100 queueing), batch 10, queue 50, inference 25, total 200
STAGES = StageMeans(requests=1000, kafka_wait_ms=110.0, kafka_floor_ms=10.0,
                    batch_wait_ms=10.0, queue_wait_ms=50.0, inference_ms=25.0, total_ms=200.0)
T0 = datetime(2025, 1, 1, 12, 0)


def minute(index: int, workers: int, requests: int, span_s: float) -> MinuteLoad:
    return MinuteLoad(T0.replace(minute=index), workers, requests, span_s)


def test_amdahl_and_gustafson_formulas() -> None:
    assert amdahl(0.75, 3) == pytest.approx(2.0)  # 1 / (0.25 + 0.75/3)
    assert amdahl(0.9, 4) == pytest.approx(1 / 0.325)
    assert amdahl(0.0, 8) == 1.0 and amdahl(1.0, 8) == pytest.approx(8.0)
    assert amdahl(0.95, 1e12) == pytest.approx(20.0)  # the 1/(1-p) ceiling
    assert gustafson(0.75, 3) == pytest.approx(2.5)  # 0.25 + 0.75 x 3
    assert gustafson(0.9, 4) == pytest.approx(3.7)
    assert gustafson(0.5, 1) == 1.0


def test_serial_and_parallel_split_of_the_stages() -> None:
    assert STAGES.parallel_ms == pytest.approx(150.0)  # (110 - 10) + 50
    assert STAGES.serial_ms == pytest.approx(50.0)  # 10 + 10 + 25 + (200 - 195) rest
    assert STAGES.parallel_fraction == pytest.approx(0.75)


def test_fraction_measured_with_k_workers_converts_to_one_worker() -> None:
    # serial 0.25 + parallel 0.25 on 3 workers = 0.25 + 0.75 on one worker
    assert one_worker_fraction(0.5, 3) == pytest.approx(0.75)
    assert one_worker_fraction(0.5, 1) == pytest.approx(0.5)
    assert one_worker_fraction(0.0, 4) == 0.0
    # consistency: Amdahl with the converted p reproduces the k-worker run's time ratio
    assert amdahl(one_worker_fraction(0.5, 3), 3) == pytest.approx((0.25 + 0.75) / (0.25 + 0.25))


def test_measured_worker_count_and_peak_rates() -> None:
    minutes = [minute(0, 1, 600, 60.0), minute(1, 1, 300, 10.0), minute(2, 2, 1200, 20.0)]
    assert workers_measured(minutes) == pytest.approx((600 + 300 + 2 * 1200) / 2100)
    assert peak_rates(minutes) == {1: 30.0, 2: 60.0}
    assert peak_rates([minute(0, 1, 5, 0.2)]) == {1: 5.0}  # a span under 1 s counts as 1 s


def test_plan_table_with_and_without_measurements() -> None:
    one_count = plan_table(STAGES, [minute(0, 1, 600, 60.0)], [1, 2, 4, 8], partitions=4)
    assert "serial fraction 0.250 (Gustafson p = 0.750)" in one_count
    assert "Amdahl p = 0.750" in one_count  # logged with 1 worker: no conversion
    rows = one_count.splitlines()[-4:]
    assert rows[1].split()[:3] == ["2", "1.60x", "1.75x"]  # 1/(0.25+0.375), 0.25+1.5
    assert rows[3].split()[:3] == ["8", "2.29x", "3.25x"]  # capped at 4 partitions
    assert all(row.endswith("not measured") for row in rows)
    measured = plan_table(STAGES, [minute(0, 1, 600, 60.0), minute(1, 2, 1140, 60.0)],
                          [1, 2, 4], partitions=4)
    lines = measured.splitlines()
    assert lines[-2].endswith("1.90x vs 1 worker(s) (19.0 req/s)")
    assert lines[-1].endswith("not measured")


def test_parse_counts() -> None:
    assert parse_counts("8, 1,2,2") == [1, 2, 8]
    for bad in ("", "0,1", "a,b"):
        with pytest.raises(ConfigError):
            parse_counts(bad)
