"""What every stage gets: the mode, the broker, a scratch dir, and the figures measured so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.modes import Mode


@dataclass
class Context:
    mode: Mode
    bootstrap: str
    workdir: Path
    torch_threads: int
    quix_python: Path | None  # None: the Quix Streams contender is skipped
    results: dict[str, Any] = field(default_factory=dict)
    latency_batch: int | None = None  # None: the knee of the MiniLM ceiling curve
