"""`streamserve up`: run N local `streamserve worker` processes, or as many as the backlog needs.

Every `autoscale_poll_s` the supervisor restarts crashed workers and workers whose `/health`
failed several polls in a row (health.py), reads the signals (Kafka lag,
the workers' /metrics) and applies the decision (decision.py): scale up by starting workers in
the lowest free slots, scale down by SIGTERM to the highest slots (a worker drains, commits and
exits on SIGTERM, so nothing is lost). One status line per change. On SIGINT/SIGTERM every
worker gets SIGTERM and the supervisor waits for them. With `--gpus` (gpus.py) the count is
fixed, one worker (or --workers-per-gpu) per GPU, each slot pinned to its GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from streams.autoscale.decision import Autoscaler, Bounds
from streams.autoscale.gpus import GpuSlots
from streams.autoscale.health import HealthWatch, probe_health
from streams.autoscale.history import read_history
from streams.autoscale.procs import WorkerHandle, start_worker
from streams.autoscale.signals import SignalReader
from streams.config import Settings
from streams.kafka.topics import ensure_topics, service_topics

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 90.0  # a worker finishing a long generation batch needs a while
CRASH_BACKOFF_MAX_S = 60.0
UNHEALTHY_KILL_S = 30.0  # SIGTERM to a worker failing /health; SIGKILL if it is still there
Probe = Callable[[str], Awaitable[bool]]


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    at_s: float  # seconds since the supervisor started
    replicas: int
    lag: int
    keda: int | None  # what KEDA's rule would run (None: not a poll)
    active: int | None = None  # workers that own partitions and answered /metrics


def say_line(line: str) -> None:
    print(line, flush=True)


class Supervisor:
    def __init__(self, settings: Settings, workers: int | None,
                 say: Callable[[str], None] | None = None, gpus: GpuSlots | None = None,
                 health: HealthWatch | None = None, probe: Probe = probe_health) -> None:
        """`workers`: a fixed count, or None for autoscaling within the settings' bounds;
        `gpus`: the GPU of each slot (then `workers` is gpus.workers)."""
        self.settings = settings
        self.fixed = gpus.workers if gpus is not None else workers
        self.gpus = gpus
        self.say = say or say_line
        self.health = health or HealthWatch()
        self._probe = probe
        self._unhealthy: dict[str, float] = {}  # worker key -> when it got SIGTERM for it
        self.autoscaler = Autoscaler(
            Bounds(settings.autoscale_min_replicas, settings.autoscale_max_replicas,
                   settings.topic_partitions, settings.autoscale_target_drain_s),
            settings.autoscale_downscale_window_s, settings.autoscale_lag_threshold)
        self.workers: dict[int, WorkerHandle] = {}  # slot -> serving worker
        self.retiring: list[WorkerHandle] = []  # got SIGTERM, still draining
        self.timeline: list[Tick] = []
        self.started: list[WorkerHandle] = []  # every process ever started (tests, status)
        self._crashes: dict[int, tuple[int, float]] = {}  # slot -> (in a row, restart at)
        self._stop = asyncio.Event()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    async def run(self) -> None:
        await ensure_topics(self.settings, service_topics(self.settings))
        reader = SignalReader(self.settings) if self.fixed is None else None
        if reader is not None:
            await reader.start()
            history = await asyncio.to_thread(read_history, self.settings)
            if history is not None:
                reader.seed(history)
        try:
            self._scale_to(self.fixed or self.autoscaler.bounds.clamp(0), "start", 0)
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.settings.autoscale_poll_s)
                if self._stop.is_set():
                    break
                self._reap()
                await self._check_health()
                if reader is not None:
                    await self._autoscale(reader)
        finally:
            if reader is not None:
                await reader.close()
            await self._stop_all()

    async def _autoscale(self, reader: SignalReader) -> None:
        targets = {w.key: w.metrics_url for w in self.workers.values()}
        try:
            signals = await reader.read(time.monotonic(), targets)
        except Exception as exc:  # noqa: BLE001 - a broker hiccup must not stop the service
            logger.warning("cannot read autoscaling signals (keeping %d replicas): %r",
                           len(self.workers), exc)
            return
        bounds = self.autoscaler.bounds
        if signals.lag.partitions != bounds.partitions:
            self.autoscaler.bounds = dataclasses.replace(bounds,
                                                         partitions=signals.lag.partitions)
        decision = self.autoscaler.decide(time.monotonic(), len(self.workers), signals.load)
        self.timeline.append(Tick(self.elapsed(), len(self.workers), signals.lag.total,
                                  decision.keda, signals.active))
        if decision.replicas != len(self.workers):
            reason = (f"{decision.reason}; {signals.active}/{signals.reporting} workers "
                      "reporting with partitions")
            self._scale_to(decision.replicas, reason, signals.lag.total)

    def _scale_to(self, replicas: int, reason: str, lag: int) -> None:
        before = len(self.workers)
        # A draining worker still holds its slot's group.instance.id and chDB path: skip it.
        busy = {w.slot for w in self.retiring}
        while len(self.workers) < replicas:
            slot = next(s for s in range(replicas + len(busy))
                        if s not in self.workers and s not in busy)
            self._start(slot)
        for slot in sorted(self.workers, reverse=True)[:max(0, before - replicas)]:
            worker = self.workers.pop(slot)
            worker.terminate()
            self.retiring.append(worker)
        self.timeline.append(Tick(self.elapsed(), len(self.workers), lag, None))
        self.say(f"[up] {self.elapsed():7.1f}s replicas {before} -> {len(self.workers)} "
                 f"lag {lag}: {reason}")

    def _start(self, slot: int) -> None:
        gpu = self.gpus.gpu_of(slot) if self.gpus is not None else None
        ports = {w.web_port for w in [*self.workers.values(), *self.retiring]}
        self.workers[slot] = worker = start_worker(self.settings, slot, gpu, ports)
        self.started.append(worker)

    async def _check_health(self) -> None:
        """SIGTERM to workers that failed /health `health.failures` polls in a row (the crash
        path in `_reap` restarts them once they exit); SIGKILL to those that ignore it."""
        now = time.monotonic()
        polled = [w for w in self.workers.values() if not w.exited and not w.stopping]
        answers = await asyncio.gather(*(self._probe(w.health_url) for w in polled))
        for worker, ok in zip(polled, answers, strict=True):
            if self.health.unhealthy(worker.key, ok, now - worker.started_at):
                where = f" (GPU {worker.gpu})" if worker.gpu is not None else ""
                self.say(f"[up] {self.elapsed():7.1f}s worker {worker.worker_id}{where} failed "
                         f"/health {self.health.failed_in_a_row(worker.key)} polls in a row; "
                         "restarting it")
                worker.terminate()
                self._unhealthy[worker.key] = now
        for worker in self.workers.values():
            asked = self._unhealthy.get(worker.key)
            if asked is not None and not worker.exited and now - asked > UNHEALTHY_KILL_S:
                worker.kill()
        live = {w.key for w in self.workers.values()}
        self.health.forget_all_but(live)
        self._unhealthy = {k: v for k, v in self._unhealthy.items() if k in live}

    def _reap(self) -> None:
        """Forget drained workers; restart crashed ones (backing off if they keep crashing)."""
        for worker in [w for w in self.retiring if w.exited]:
            self.retiring.remove(worker)
        now = time.monotonic()
        for slot, worker in list(self.workers.items()):
            if not worker.exited:
                if now - worker.started_at > CRASH_BACKOFF_MAX_S:
                    self._crashes.pop(slot, None)  # it stayed up: forgive earlier crashes
                continue
            in_a_row, restart_at = self._crashes.get(slot, (0, 0.0))
            if restart_at == 0.0:  # just noticed: schedule the restart
                delay = min(CRASH_BACKOFF_MAX_S, 2.0 ** in_a_row - 1)
                self._crashes[slot] = (in_a_row + 1, now + delay)
                self.say(f"[up] {self.elapsed():7.1f}s worker {worker.worker_id} exited with "
                         f"{worker.process.returncode}; restart in {delay:.0f}s "
                         f"(log: {worker.data_dir / 'worker.log'})")
            elif now >= restart_at:
                self._start(slot)
                self._crashes[slot] = (in_a_row, 0.0)

    async def _stop_all(self) -> None:
        everyone = [*self.workers.values(), *self.retiring]
        for worker in everyone:
            worker.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(not w.exited for w in everyone) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        for worker in everyone:
            worker.kill()  # only the ones that ignored SIGTERM for STOP_TIMEOUT_S
        self.workers.clear()
        self.retiring.clear()
        self.say(f"[up] {self.elapsed():7.1f}s stopped {len(everyone)} worker(s)")
