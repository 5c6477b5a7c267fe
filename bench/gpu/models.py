"""The GPU run's models: the real architectures and tokenizers with random weights.

The device machine reaches no registry and receives at most 64 MiB, and the weights of MiniLM
(87 MiB) and SmolLM2 (the 135M GGUF) do not fit beside the broker. Throughput does not depend on
the values of the weights: the same shapes do the same work (a generated token may differ, so
SmolLM2 answers are noise, and one that hits EOS early shows as fewer tokens_out). So:

    python -m bench.gpu.models prepare .gpu-models          # here: configs + tokenizers, ~4 MB
    python -m bench.gpu.models build .gpu-models OUT cuda    # there: random weights + registry

`build` writes OUT/<name>/ (safetensors, loaded by the worker's own loaders) and
OUT/registry.toml: the shipped registry's entries with those sources and the device.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from models.registry import ModelSpec, load_registry
from models.sources import resolve_source

MODELS = ("minilm", "smollm2")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


def prepare(out: Path) -> None:
    """Config and tokenizer of each shipped model (installed packages), no weights."""
    from transformers import AutoConfig, AutoTokenizer

    for name in MODELS:
        spec = load_registry().get(name)
        path = resolve_source(spec)
        gguf = {"gguf_file": path.name} if spec.format == "gguf" else {}
        folder = path.parent if gguf else path
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        AutoConfig.from_pretrained(folder, local_files_only=True, **gguf).save_pretrained(target)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **gguf)
        tokenizer.save_pretrained(target)
        print(f"{name}: config and tokenizer of {path} -> {target}", flush=True)


def build(configs: Path, out: Path, device: str) -> Path:
    """Random-weight models of the prepared configs and a registry serving them on `device`."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    entries = []
    for name in MODELS:
        spec = load_registry().get(name)
        started = time.monotonic()
        config = AutoConfig.from_pretrained(configs / name, local_files_only=True)
        torch.manual_seed(0)
        factory: Any = AutoModelForCausalLM if spec.kind == "causal_lm" else AutoModel
        model = factory.from_config(config)
        target = out / name
        shutil.copytree(configs / name, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(*_WEIGHTS))
        model.save_pretrained(target, safe_serialization=True)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params / 1e6:.1f}M random parameters -> {target} "
              f"({time.monotonic() - started:.1f}s)", flush=True)
        entries.append(_entry(spec, target, device))
    registry = out / "registry.toml"
    registry.write_text("\n".join(entries), encoding="utf-8")
    load_registry(registry)  # what we wrote must parse
    return registry


def _entry(spec: ModelSpec, source: Path, device: str) -> str:
    values: dict[str, Any] = {
        "name": spec.name, "version": f"random-{spec.version}", "tasks": list(spec.tasks),
        "kind": spec.kind, "source": str(source.resolve()), "format": "safetensors",
        "dtype": spec.dtype, "device": device, "engine": spec.engine,
        "max_batch_size": spec.max_batch_size, "max_input_tokens": spec.max_input_tokens,
        "max_new_tokens": spec.max_new_tokens, "default": True}
    if spec.labels:
        values.update(labels=list(spec.labels), label_template=spec.label_template,
                      classify_scale=spec.classify_scale)
    # JSON's strings, numbers, booleans and arrays are valid TOML values.
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "[[models]]\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu.models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="configs + tokenizers of the shipped models")
    prep.add_argument("out", type=Path)
    make = commands.add_parser("build", help="random weights and a registry")
    make.add_argument("configs", type=Path)
    make.add_argument("out", type=Path)
    make.add_argument("device", choices=("cuda", "cpu", "auto"))
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out)
    else:
        print(build(args.configs, args.out, args.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
