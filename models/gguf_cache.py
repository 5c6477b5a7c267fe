"""One-time GGUF → safetensors conversion, cached under `<cache_dir>/<sha256 of the gguf>/`.

Reading a GGUF file dequantizes every tensor (≈11 s for SmolLM2-135M); the safetensors copy
loads in well under a second. The cache is keyed by content, so a changed file converts again.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from models.errors import ModelLoadError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20
_COMPLETE = ".complete"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_converted(
    gguf_path: Path, cache_dir: Path, progress: Callable[[str], None] | None = None
) -> Path:
    """The safetensors folder for `gguf_path`, converting it first if no complete copy exists."""
    target = cache_dir / sha256_file(gguf_path)
    if (target / _COMPLETE).is_file():
        return target
    say = progress or (lambda _message: None)
    say(f"converting GGUF {gguf_path.name} to safetensors (one-time) …")
    started = time.perf_counter()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache_dir, target.name)
    if target.exists():  # not from us: our folders appear complete or not at all
        shutil.rmtree(target)
    # Build in a private temp dir and rename: a crash mid-conversion leaves only a temp dir,
    # never a folder that looks like a finished cache.
    staging = cache_dir / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _convert(gguf_path, staging)
        (staging / _COMPLETE).write_text(gguf_path.name, encoding="utf-8")
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    elapsed = time.perf_counter() - started
    logger.info("converted %s to %s in %.1f s", gguf_path, target, elapsed)
    say(f"converted {gguf_path.name} in {elapsed:.1f} s")
    return target


def _convert(gguf_path: Path, staging: Path) -> None:
    folder, name = gguf_path.parent, gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
        loaded = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, local_files_only=True
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot read GGUF file {gguf_path}: {exc}") from exc
    # save_pretrained refuses a GGUF-loaded model (its config carries the GGUF quantization
    # marker): copy the dequantized weights into a plain model of the same architecture.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    _fix_special_tokens(tokenizer, config.eos_token_id)
    fresh.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)


def _fix_special_tokens(tokenizer: PreTrainedTokenizerBase, eos_id: object) -> None:
    # The GGUF tokenizer metadata of SmolLM2 names <|im_start|> as EOS while the model config says
    # <|im_end|> (id 2); trust the model config so decode/stop handling agree with generate().
    if isinstance(eos_id, list):
        eos_id = eos_id[0] if eos_id else None
    if isinstance(eos_id, int) and tokenizer.eos_token_id != eos_id:
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos_id)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _publish(staging: Path, target: Path) -> None:
    try:
        os.rename(staging, target)
    except OSError:
        # Another process finished the same conversion first; theirs is as good as ours.
        if not (target / _COMPLETE).is_file():
            raise


def _remove_abandoned(cache_dir: Path, digest: str) -> None:
    """Delete temp dirs of earlier conversions whose process is gone."""
    for stale in cache_dir.glob(f".{digest}.tmp-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
