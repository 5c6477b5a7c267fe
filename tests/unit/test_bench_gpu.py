"""The device bench's pure parts: its modes, the registry it writes for the random-weight models,
the options it sets for contenders, and the report's answer to "does one worker keep the
device busy?"."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench import kafka_io
from bench.gpu import options
from bench.gpu.models import _entry
from bench.gpu.modes import DEVICE, DEVICE_SMOKE, device_mode
from bench.gpu.summary import answer
from bench.modes import SMOKE
from bench.runners import DEVICE_ENV, REGISTRY_ENV, bench_spec
from models.registry import load_registry


def test_device_modes() -> None:
    assert device_mode(False) is DEVICE and device_mode(True) is DEVICE_SMOKE
    assert max(DEVICE.minilm_batches) == 1024 and DEVICE.smollm_batches
    assert DEVICE.is_measurement and not DEVICE_SMOKE.is_measurement and not SMOKE.is_measurement
    for mode in (DEVICE, DEVICE_SMOKE):  # every device stage has work in both sizes
        assert set(mode.stages) == {"ceiling", "pipeline", "overhead", "scaling"}
        assert mode.pipeline_minilm_n and mode.overhead_n and mode.scaling_minilm_n
        assert mode.smollm_batches and mode.pipeline_smollm_batches


def test_the_written_registry_serves_the_random_models_on_the_device(tmp_path: Path) -> None:
    text = "\n".join(_entry(spec, tmp_path / spec.name, "cuda")
                     for spec in (load_registry().get("minilm"), load_registry().get("smollm2")))
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    registry = load_registry(path)
    minilm, smol = registry.get("minilm"), registry.get("smollm2")
    assert (minilm.device, minilm.dtype, minilm.format) == ("cuda", "auto", "safetensors")
    assert minilm.source == str((tmp_path / "minilm").resolve()) and minilm.labels
    assert smol.engine == "continuous" and smol.max_new_tokens == 256
    assert smol.version.startswith("random-")


def test_options_reach_the_contenders_through_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    options.add_arguments(parser)
    registry = tmp_path / "r.toml"
    registry.write_text('[[models]]\nname = "minilm"\nversion = "x"\ntasks = ["embed"]\n'
                        'source = "w"\ndevice = "cpu"\n')
    args = parser.parse_args(["--device", "cuda", "--registry", str(registry),
                              "--bootstrap", "127.0.0.1:1", "--broker-kind", "tansu"])
    for name in (DEVICE_ENV, REGISTRY_ENV, "STREAMSERVE_KAFKA_ENABLE_IDEMPOTENCE"):
        monkeypatch.setenv(name, "")  # recorded, so what apply() sets is undone afterwards
        monkeypatch.delenv(name)
    monkeypatch.setattr(kafka_io, "BROKER", kafka_io.BrokerTraits())
    options.apply(args)
    assert bench_spec("minilm").device == "cuda" and bench_spec("minilm").version == "x"
    traits = kafka_io.BROKER
    assert (traits.idempotent, traits.exact_end_offsets) == (False, False)
    from streams.config import Settings
    from streams.kafka.options import producer_options

    assert producer_options(Settings())["enable_idempotence"] is False  # what workers get
    assert options.meta(args)["broker"].startswith("tansu")


def _results(noop: float, t_off: float) -> dict[str, Any]:
    def fig(value: float) -> dict[str, Any]:
        return {"median": value, "min": value, "max": value}
    return {"ceiling": {"minilm": {"b_star": 1024, "t_off_b_star": fig(t_off)}},
            "overhead": {"rate": {"ours": fig(noop), "raw": fig(noop * 1.2)}},
            "pipeline": {"minilm": {"rate": fig(noop * 0.8), "efficiency": 0.8 * noop / t_off}},
            "scaling": {"minilm": {"one_worker": fig(100.0), "two_workers": fig(180.0),
                                   "speedup": 1.8}}}


def test_the_answer_says_which_side_is_the_bottleneck() -> None:
    worker_bound = "\n".join(answer(_results(noop=20_000.0, t_off=50_000.0)))
    assert "**Yes, one worker is the bottleneck**" in worker_bound
    assert "40% of what the device computes alone" in worker_bound
    assert "--workers-per-gpu" in worker_bound
    assert "2 workers on one device, minilm: 100.0 -> 180.0 requests/s (x1.80)" in worker_bound
    device_bound = "\n".join(answer(_results(noop=20_000.0, t_off=5_000.0)))
    assert "**No, the device is the limit**" in device_bound and "4.0x" in device_bound
    assert "Not answered" in "\n".join(answer({}))
