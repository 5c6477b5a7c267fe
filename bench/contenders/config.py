"""What a contender process is told (JSON on its command line). Standard library only: the
Quix Streams contender imports it from its own virtual environment."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ContenderConfig:
    kind: str  # module under bench.contenders: ours | raw | faust_agent | quix_app
    model: str  # noop | minilm | smollm2
    bootstrap: str
    requests_topic: str
    results_topic: str
    dlq_topic: str
    tokens_topic: str
    group: str
    worker_id: str
    ready_file: str
    go_file: str
    cache_dir: str
    batch_size: int = 1
    max_wait_ms: float = 10.0
    torch_threads: int | None = None
    new_tokens: int = 32
    web_port: int = 0
    sink_dir: str | None = None  # ours only: write the request log to chDB under this dir
    variant: str = ""  # raw only: "pipelined" acknowledges and commits behind the next fetch
    delivery: str = "at_least_once"  # ours only: or "exactly_once"
    control: bool = True  # ours only: the control plane's faust agent (off: bench's baseline)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_argv(cls) -> ContenderConfig:
        return cls(**json.loads(sys.argv[1]))


def ready_then_wait_for_go(config: ContenderConfig, poll_s: float = 0.005) -> None:
    """Tell the parent the model is loaded and warm, then block until every contender of the
    run is ready and the parent says go (so all of them start consuming together)."""
    Path(config.ready_file).write_text("ready")
    go = Path(config.go_file)
    while not go.exists():
        time.sleep(poll_s)
