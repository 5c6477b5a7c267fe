from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import RegistryError, UnknownModel
from models.registry import DEFAULT_REGISTRY, Registry, load_registry

GOOD = """
[[models]]
name = "llm"
version = "a"
tasks = ["generate"]
source = "weights/llm"
max_new_tokens = 32

[[models]]
name = "llm"
version = "b"
tasks = ["generate"]
source = "package:some_pkg/sub/model.gguf"
format = "gguf"
max_new_tokens = 64
default = true

[[models]]
name = "fake"
version = "1"
kind = "fake"
tasks = ["embed", "classify"]
labels = ["x", "y"]
fake_delay_s = 0.25
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_registry_serves_smollm2_and_minilm() -> None:
    registry = load_registry()
    assert registry.names() == ["minilm", "smollm2"]
    smol = registry.get("smollm2")
    assert smol.tasks == ("generate",) and smol.format == "gguf" and smol.kind == "causal_lm"
    assert smol.max_input_tokens == 1024 and smol.max_new_tokens == 256
    minilm = registry.get("minilm")
    assert minilm.tasks == ("embed", "classify") and minilm.kind == "encoder"
    assert minilm.max_input_tokens == 256 and minilm.origin == DEFAULT_REGISTRY


def test_versions_defaults_and_kinds(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    assert registry.names() == ["fake", "llm"]
    assert registry.versions("llm") == ["a", "b"]
    assert registry.get("llm").version == "b"
    assert registry.get("llm", "a").format == "safetensors"
    assert registry.get("llm", "a").max_batch_size == 8  # default
    fake = registry.get("fake")  # a single version is the default without saying so
    assert fake.kind == "fake" and fake.fake_delay_s == 0.25 and fake.labels == ("x", "y")
    assert [s.key for s in registry] == ["fake:1", "llm:a", "llm:b"]
    assert [s.key for s in registry.defaults()] == ["fake:1", "llm:b"]


def test_unknown_name_and_version_raise_typed_errors(tmp_path: Path) -> None:
    registry = load_registry(write(tmp_path, GOOD))
    with pytest.raises(UnknownModel, match="unknown model 'nope'"):
        registry.get("nope")
    with pytest.raises(UnknownModel, match=r"no version 'z'.*a, b"):
        registry.get("llm", "z")
    assert UnknownModel.retriable is False


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            'version = "1"\ntasks = ["generate"]\nsource = "x"\nmax_new_tokens = 8\nbatch = 3',
            r"unknown keys \['batch'\]",
        ),
        ('version = "1"\ntasks = ["translate"]\nsource = "x"', r"tasks: unknown \['translate'\]"),
        ('version = "1"\ntasks = []\nsource = "x"', "tasks must be a non-empty list"),
        ('version = "1"\ntasks = ["embed"]', "source is required"),
        ('version = "1"\ntasks = ["generate"]\nsource = "x"', "max_new_tokens must be >= 1"),
        (
            'version = "1"\ntasks = ["embed"]\nsource = "x"\nmax_batch_size = 0',
            "max_batch_size must be an integer >= 1",
        ),
        ('version = "1"\ntasks = ["embed"]\nsource = "x"\ndevice = "gpu"', "device must be"),
        ('version = "1"\ntasks = ["embed"]\nsource = "x"\ndtype = "int8"', "dtype must be one of"),
        ('version = "1"\ntasks = ["embed"]\nsource = "x"\nformat = "gguf"', "gguf.*causal_lm"),
        ('version = "1"\ntasks = ["embed"]\nsource = "package:a-b/c"', "package:<import name>"),
        (
            'version = "1"\ntasks = ["embed", "generate"]\nsource = "x"\nkind = "encoder"',
            "encoder cannot 'generate'",
        ),
        (
            'version = "1"\ntasks = ["embed"]\nsource = "x"\nlabel_template = "no slot"',
            "label_template",
        ),
        ('tasks = ["embed"]\nsource = "x"', "version is required"),
    ],
)
def test_invalid_entries_name_file_entry_and_problem(
    tmp_path: Path, entry: str, problem: str
) -> None:
    path = write(tmp_path, f'[[models]]\nname = "m"\n{entry}\n')
    with pytest.raises(RegistryError, match=problem) as info:
        load_registry(path)
    assert str(path) in str(info.value) and "model 'm'" in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[models]\nname=", "not valid TOML"),
        ("", r"no \[\[models\]\] entries"),
        ('title = "x"\n[[models]]\nname = "m"', "unknown top-level keys"),
        ("[[models]]\nversion = '1'", "name is required"),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem):
        load_registry(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "absent.toml")


def test_default_conflicts(tmp_path: Path) -> None:
    entry = '[[models]]\nname = "m"\nversion = "{v}"\ntasks = ["embed"]\nsource = "x"\n{extra}\n'
    two_defaults = entry.format(v=1, extra="default = true") + entry.format(
        v=2, extra="default = true"
    )
    with pytest.raises(RegistryError, match="several default versions"):
        load_registry(write(tmp_path, two_defaults))
    no_default = entry.format(v=1, extra="") + entry.format(v=2, extra="")
    with pytest.raises(RegistryError, match="none has default"):
        load_registry(write(tmp_path, no_default))
    duplicate = entry.format(v=1, extra="") + entry.format(v=1, extra="")
    with pytest.raises(RegistryError, match="declared twice"):
        load_registry(write(tmp_path, duplicate))


def test_registry_from_specs_in_code() -> None:
    from models.fake import fake_spec

    registry = Registry([fake_spec("a"), fake_spec("b", tasks=("embed",), fake_delay_s=0.1)])
    assert registry.names() == ["a", "b"]
    assert registry.get("b").fake_delay_s == 0.1
