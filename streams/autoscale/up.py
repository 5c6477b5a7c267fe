"""The `streamserve up` entry point: CLI flags on top of the settings, signals, the loop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

from pydantic import ValidationError

from streams.autoscale.gpus import GpuInventory, GpuSlots, gpu_slots, visible_gpus
from streams.autoscale.supervisor import Supervisor, say_line
from streams.config import Settings
from streams.errors import ConfigError


def with_bounds(settings: Settings, workers: str, low: int | None,
                 high: int | None) -> tuple[Settings, int | None]:
    """The CLI's --workers auto|N, --min, --max on top of the settings (validated)."""
    if workers != "auto" and not (workers.isdigit() and int(workers) >= 1):
        raise ConfigError(f"--workers wants 'auto' or a count >= 1, got {workers!r}")
    bounds = {k: v for k, v in (("autoscale_min_replicas", low),
                                ("autoscale_max_replicas", high)) if v is not None}
    try:
        settings = Settings(**{**settings.model_dump(exclude_none=True), **bounds})
    except ValidationError as exc:
        raise ConfigError(f"invalid --min/--max: {exc}") from exc
    if settings.autoscale_min_replicas > settings.autoscale_max_replicas:
        raise ConfigError("autoscaling wants min replicas <= max replicas")
    return settings, None if workers == "auto" else int(workers)


def with_gpus(workers: str, low: int | None, high: int | None, gpus: str | None,
              workers_per_gpu: int,
              inventory: Callable[[], GpuInventory] = visible_gpus) -> GpuSlots | None:
    """The CLI's --gpus all|0,1,... and --workers-per-gpu K: a fixed count, one slot per GPU
    (K per GPU), so --workers/--min/--max do not combine with it."""
    if gpus is None:
        if workers_per_gpu != 1:
            raise ConfigError("--workers-per-gpu needs --gpus")
        return None
    if workers != "auto" or low is not None or high is not None:
        raise ConfigError("--gpus sets the worker count (GPUs x --workers-per-gpu); "
                          "drop --workers/--min/--max")
    return gpu_slots(gpus, workers_per_gpu, inventory)


def run_supervisor(settings: Settings, workers: str = "auto", low: int | None = None,
                   high: int | None = None, gpus: str | None = None,
                   workers_per_gpu: int = 1) -> int:
    """Blocking entry point of `streamserve up`; SIGINT/SIGTERM stop it gracefully."""
    slots = with_gpus(workers, low, high, gpus, workers_per_gpu)
    settings, count = with_bounds(settings, workers, low, high)

    async def main() -> None:
        supervisor = Supervisor(settings, count, gpus=slots)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        mode = slots.describe() if slots else f"{count} worker(s)" if count else (
            f"autoscaling {settings.autoscale_min_replicas}..{settings.autoscale_max_replicas}"
            f" replicas, drain target {settings.autoscale_target_drain_s:g}s")
        say_line(f"[up] {mode}; group {settings.consumer_group} on {settings.requests_topic}")
        await supervisor.run()

    asyncio.run(main())
    return 0
