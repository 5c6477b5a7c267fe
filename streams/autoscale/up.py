"""The `streamserve up` entry point: CLI flags on top of the settings, signals, the loop."""

from __future__ import annotations

import asyncio
import signal

from pydantic import ValidationError

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


def run_supervisor(settings: Settings, workers: str = "auto", low: int | None = None,
                   high: int | None = None) -> int:
    """Blocking entry point of `streamserve up`; SIGINT/SIGTERM stop it gracefully."""
    settings, count = with_bounds(settings, workers, low, high)

    async def main() -> None:
        supervisor = Supervisor(settings, count)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        mode = f"{count} worker(s)" if count else (
            f"autoscaling {settings.autoscale_min_replicas}..{settings.autoscale_max_replicas}"
            f" replicas, drain target {settings.autoscale_target_drain_s:g}s")
        say_line(f"[up] {mode}; group {settings.consumer_group} on {settings.requests_topic}")
        await supervisor.run()

    asyncio.run(main())
    return 0
