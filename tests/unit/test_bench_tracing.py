"""The bench's tracing stage runs without a broker, measures all three arms side by side and
lands in the report. Timings are asserted only within generous bounds: a test is not a bench."""

from __future__ import annotations

import math
from pathlib import Path

from bench import tracing_cost
from bench.context import Context
from bench.modes import SMOKE
from bench.report import _tracing_rows


def test_the_tracing_stage_measures_every_arm_and_reports_the_ratios(tmp_path: Path) -> None:
    ctx = Context(SMOKE, "127.0.0.1:9", tmp_path, 1, None)  # port 9: nothing listens there
    out = tracing_cost.run(ctx)
    assert set(out["us_per_record"]) == {"bypass", "off", "on"}
    for arm in ("bypass", "off", "on"):
        assert out["us_per_record"][arm]["reps"] == out["rounds"] >= 3
        assert all(v > 0 for v in out["us_per_record"][arm]["values"])
    off, on = out["off_over_bypass"]["median"], out["on_over_bypass"]["median"]
    assert math.isfinite(off) and math.isfinite(on)
    # Tracing off is the bypassed path plus a few `is None` checks: far below 2x even on a
    # loaded machine; spans for every request cost more than nothing.
    assert off < 2.0
    assert on > 1.0
    rows = _tracing_rows(out)
    assert [row[0][:2] for row in rows] == ["9.", "9.", "9."]
