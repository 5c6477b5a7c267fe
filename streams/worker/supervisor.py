"""Every long-running task of a worker is supervised: none may die unobserved.

A supervised task that raises is logged with its traceback, counted, and restarted after a short
back-off, up to `max_restarts` within `window_s`; past that budget the worker is marked not alive
(`/health` 503 with the reason), so its orchestrator restarts the process. A task that returns
normally has finished on purpose (a lane retired) and is not restarted; cancelled tasks neither.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from streams.worker.health import Health

logger = logging.getLogger(__name__)

TaskFactory = Callable[[], Coroutine[Any, Any, None]]


class Supervisor:
    def __init__(self, health: Health, on_restart: Callable[[str], None] = lambda name: None, *,
                 max_restarts: int = 5, window_s: float = 60.0, backoff_s: float = 0.2) -> None:
        self._health = health
        self._on_restart = on_restart
        self._max_restarts = max_restarts
        self._window_s = window_s
        self._backoff_s = backoff_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._crashes: dict[str, deque[float]] = {}
        self._stopping = False

    def spawn(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run `factory()` as the task `name`, restarting it when it crashes."""
        return self._start(name, factory, 0.0)

    def _start(self, name: str, factory: TaskFactory, delay_s: float) -> asyncio.Task[None]:
        async def run() -> None:
            if delay_s:
                await asyncio.sleep(delay_s)
            await factory()

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda done: self._ended(name, factory, done))
        return task

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def stop(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self) -> None:
        self._stopping = True
        for name in list(self._tasks):
            await self.stop(name)

    def _ended(self, name: str, factory: TaskFactory, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is not task:
            return  # replaced or stopped meanwhile
        if task.cancelled() or task.exception() is None or self._stopping:
            self._tasks.pop(name, None)
            return
        error = task.exception()
        assert error is not None
        logger.error("worker task %s crashed", name, exc_info=error)
        crashes = self._crashes.setdefault(name, deque())
        now = time.monotonic()
        crashes.append(now)
        while crashes and crashes[0] < now - self._window_s:
            crashes.popleft()
        if len(crashes) > self._max_restarts:
            self._tasks.pop(name, None)
            self._health.fail(f"task:{name}", f"crashed {len(crashes)} times in "
                              f"{self._window_s:.0f}s, last: {type(error).__name__}")
            return
        self._on_restart(name)
        self._start(name, factory, self._backoff_s * len(crashes))
