"""The thread a static model lane computes in, with a timeout per call.

Model calls block for a long time and may never return (a wedged device, a deadlock in a
kernel), so they run off the event loop — aiokafka heartbeats and commits run there — in one
thread per model (one batch at a time: a second concurrent batch would only split the same
cores). The thread is a daemon: a call that hangs past its timeout cannot keep the process from
exiting once the worker has given up on it (a ThreadPoolExecutor's threads are joined at exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from streams.errors import StreamserveError

logger = logging.getLogger(__name__)

R = TypeVar("R")


class ModelCallTimeout(StreamserveError):
    """A model call ran past its batch timeout; the thread may still be inside it."""

    code = "model_timeout"


_Call = tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]


class ModelThread:
    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()
        self.hung = False  # a call timed out and has not returned yet

    async def call(self, fn: Callable[[], R], timeout_s: float) -> R:
        """`fn()` in the model thread; ModelCallTimeout after `timeout_s` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._calls.put((fn, future, loop))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            self.hung = True
            future.add_done_callback(self._returned)
            raise ModelCallTimeout(f"model call still running after {timeout_s:.0f}s") from None

    def close(self) -> None:
        """No more calls; a hung call is left behind (daemon thread)."""
        self._calls.put(None)

    def _returned(self, future: asyncio.Future[Any]) -> None:
        self.hung = False
        error = None if future.cancelled() else future.exception()  # retrieved: nobody waits
        logger.warning("a model call that timed out returned after all (%s)",
                       "ok" if error is None else type(error).__name__)

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            fn, future, loop = call
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                _settle(loop, future, None, exc)
            else:
                _settle(loop, future, result, None)


def _settle(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any,
            error: BaseException | None) -> None:
    def apply() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(apply)
