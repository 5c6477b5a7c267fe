"""`load_runner`: registry entry → a ready `ModelRunner` (converting a GGUF file once if needed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from models.base import ModelRunner
from models.fake import FakeRunner
from models.fake_streaming import FakeStreamingGenerator
from models.registry import ModelSpec
from models.sources import resolve_source

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def load_runner(
    spec: ModelSpec,
    cache_dir: Path,
    torch_threads: int | None = None,
    progress: Progress | None = None,
) -> ModelRunner:
    """Load `spec`'s model. `cache_dir` holds converted GGUF models (the service uses
    `<data_dir>/models`); `torch_threads` sets torch's intra-op threads for the process.

    Raises `ModelLoadError` when the model cannot be located or loaded.
    """
    say = progress or (lambda _message: None)
    if spec.kind == "fake":
        return FakeStreamingGenerator(spec) if spec.engine == "continuous" else FakeRunner(spec)
    path = resolve_source(spec)
    # Imported here so that the fake runner and the registry work without torch installed.
    from models import hf

    hf.configure_threads(torch_threads)
    # Before any conversion: a device the machine lacks fails in milliseconds, not after
    # minutes of GGUF conversion; a fallback the registry allowed is said once, here.
    where = hf.placement(spec)
    if where.note:
        logger.warning("%s", where.note)
        say(where.note)
    if spec.format == "gguf":
        from models.gguf_cache import ensure_converted

        path = ensure_converted(path, cache_dir, progress=say)
    say(f"loading {spec.name} {spec.version} on {where.device} in {where.dtype} …")
    started = time.perf_counter()
    runner: ModelRunner
    if spec.kind == "causal_lm" and spec.engine == "continuous":
        from models.continuous import ContinuousEngine

        runner = ContinuousEngine.load(spec, path)  # also a StreamingGenerator
    elif spec.kind == "causal_lm":
        from models.causal_lm import CausalLMRunner

        runner = CausalLMRunner.load(spec, path)
    else:
        from models.encoder import EncoderRunner

        runner = EncoderRunner.load(spec, path)
    elapsed = time.perf_counter() - started
    logger.info("loaded model %s from %s in %.2f s", spec.key, path, elapsed)
    say(f"loaded {spec.name} {spec.version} in {elapsed:.1f} s")
    return runner
