"""Device and precision per model: every branch with a fake device list, then the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ModelLoadError, RegistryError
from models.placement import DeviceFacts, Placement, place
from models.registry import load_registry

NO_GPU = DeviceFacts(cuda_count=0)
TWO_H100 = DeviceFacts(cuda_count=2, bf16_supported=True, cuda_visible="0,1")
ONE_T4 = DeviceFacts(cuda_count=1, bf16_supported=False)


@pytest.mark.parametrize(
    ("device", "dtype", "facts", "expected"),
    [
        ("auto", "auto", NO_GPU, Placement("cpu", "float32")),
        ("auto", "auto", TWO_H100, Placement("cuda:0", "bfloat16")),
        ("auto", "auto", ONE_T4, Placement("cuda:0", "float16")),
        ("cpu", "auto", TWO_H100, Placement("cpu", "float32")),  # the CPU even with GPUs
        ("cuda", "auto", TWO_H100, Placement("cuda:0", "bfloat16")),
        ("cuda:1", "float32", TWO_H100, Placement("cuda:1", "float32")),
        ("cuda:0", "float16", ONE_T4, Placement("cuda:0", "float16")),
        ("cpu", "bfloat16", NO_GPU, Placement("cpu", "bfloat16")),  # asked for: kept
        ("mps", "auto", DeviceFacts(0, mps_available=True), Placement("mps", "float32")),
    ],
)
def test_resolution(device: str, dtype: str, facts: DeviceFacts, expected: Placement) -> None:
    assert place(device, dtype, "none", facts) == expected  # type: ignore[arg-type]


def test_cuda_without_a_gpu_is_refused_unless_the_operator_allows_the_cpu() -> None:
    facts = DeviceFacts(cuda_count=0, cuda_visible="")
    with pytest.raises(ModelLoadError) as info:
        place("cuda", "auto", "none", facts, "minilm:1")
    message = str(info.value)
    assert "minilm:1: device 'cuda' requested but this process sees no CUDA device" in message
    assert "CUDA_VISIBLE_DEVICES=''" in message  # says why the process sees none
    assert "device_fallback = 'none' allows no fallback" in message
    assert "device_fallback = 'cpu'" in message  # and what would allow one
    fallen = place("cuda:1", "auto", "cpu", facts, "minilm:1")
    assert (fallen.device, fallen.dtype) == ("cpu", "float32")  # auto follows the fallback
    assert "running on the CPU (device_fallback = 'cpu')" in fallen.note


def test_an_index_beyond_the_visible_gpus_is_an_error_even_with_a_fallback() -> None:
    for fallback in ("none", "cpu"):
        with pytest.raises(ModelLoadError) as info:
            place("cuda:3", "auto", fallback, TWO_H100, "llm:a")  # type: ignore[arg-type]
        message = str(info.value)
        assert "device 'cuda:3' requested but this process sees 2 CUDA device(s)" in message
        assert "cuda:0..cuda:1 (CUDA_VISIBLE_DEVICES='0,1')" in message


def test_bfloat16_on_a_gpu_without_it_and_mps_without_mps() -> None:
    with pytest.raises(ModelLoadError, match="does not support it; use 'float16' or 'auto'"):
        place("cuda", "bfloat16", "none", ONE_T4)
    with pytest.raises(ModelLoadError, match="MPS is not available"):
        place("mps", "auto", "none", NO_GPU)
    with pytest.raises(ModelLoadError, match="device must be"):
        place("gpu", "auto", "none", NO_GPU)
    assert place("cpu", "auto", "none", NO_GPU).note == ""


ENTRY = '[[models]]\nname = "m"\nversion = "1"\ntasks = ["embed"]\nsource = "{source}"\n'


def registry(tmp_path: Path, extra: str, source: str = "w") -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(ENTRY.format(source=source) + extra, encoding="utf-8")
    return path


def test_registry_defaults_and_keys(tmp_path: Path) -> None:
    spec = load_registry(registry(tmp_path, "")).get("m")
    assert (spec.device, spec.dtype, spec.device_fallback) == ("cpu", "auto", "none")
    spec = load_registry(registry(tmp_path, 'device = "cuda:1"\ndtype = "bfloat16"\n'
                                  'device_fallback = "cpu"\n')).get("m")
    assert (spec.device, spec.dtype, spec.device_fallback) == ("cuda:1", "bfloat16", "cpu")
    with pytest.raises(RegistryError, match=r"device_fallback must be one of \['cpu', 'none'\]"):
        load_registry(registry(tmp_path, 'device_fallback = "gpu"\n'))
    with pytest.raises(RegistryError, match="dtype must be one of"):
        load_registry(registry(tmp_path, 'dtype = "int8"\n'))


def test_the_shipped_registry_runs_where_the_machine_can() -> None:
    for spec in load_registry():
        assert (spec.device, spec.dtype) == ("auto", "auto")


# ---- the real loader on this machine (torch, a tiny BERT) ----

def _tiny(tmp_path: Path, extra: str) -> object:
    from models.loading import load_runner
    from tests.unit.test_models_encoder import build_tiny_bert

    build_tiny_bert(tmp_path / "w")
    spec = load_registry(registry(tmp_path, extra, str(tmp_path / "w"))).get("m")
    return load_runner(spec, tmp_path / "cache", torch_threads=1)


def test_facts_of_this_process_come_from_torch() -> None:
    import torch

    from models import hf

    facts = hf.device_facts()
    assert facts.cuda_count == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert facts.bf16_supported is (facts.cuda_count > 0 and torch.cuda.is_bf16_supported())


def test_loader_refuses_or_falls_back_on_a_machine_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the no-GPU branches are covered by the fakes")
    with pytest.raises(ModelLoadError, match="sees no CUDA device"):
        _tiny(tmp_path / "a", 'device = "cuda"\n')
    runner = _tiny(tmp_path / "b", 'device = "cuda"\ndevice_fallback = "cpu"\n')
    model = runner._model  # type: ignore[attr-defined]
    assert model.device.type == "cpu" and model.dtype == torch.float32


def test_half_precision_is_what_the_model_computes_in(tmp_path: Path) -> None:
    import torch

    from models.base import ModelInput

    runner = _tiny(tmp_path, 'device = "cpu"\ndtype = "bfloat16"\n')
    assert runner._model.dtype == torch.bfloat16  # type: ignore[attr-defined]
    [out] = runner.run("embed", [ModelInput("r", text="the cat sat")])  # type: ignore[attr-defined]
    assert out.embedding is not None
    assert sum(v * v for v in out.embedding) == pytest.approx(1.0, rel=1e-3)  # float32 out
