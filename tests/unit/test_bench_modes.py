"""Every stage runs (or says it has nothing to do) in every mode: smoke mode sends no requests
to most stages, and a stage given none must not crash the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import latency, naive, pipeline, scaling, sink
from bench.context import Context
from bench.modes import SMOKE


@pytest.mark.parametrize("stage", [naive, latency, sink, scaling, pipeline])
def test_a_stage_with_nothing_to_send_touches_no_broker(stage: object, tmp_path: Path) -> None:
    ctx = Context(SMOKE, "127.0.0.1:9", tmp_path, 1, None)  # port 9: nothing listens there
    out = stage.run(ctx)  # type: ignore[attr-defined]
    assert isinstance(out, dict)
    assert "skipped" in out or out == {} or set(out) == {"note"}
