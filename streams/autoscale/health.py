"""Is a worker alive? Its `/health` (200 while its engine runs) polled by the supervisor.

A process can be running and useless: a deadlocked event loop, a wedged CUDA context. Such a
worker still holds its partitions (its heartbeats may even go on), so the supervisor restarts
one that failed `failures` polls in a row: answered non-200, or did not answer within the
timeout. A worker is judged only once it answered 200 the first time (it serves /health after
its models loaded, which may take minutes) or after `startup_grace_s` without ever answering.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass, field


def _get_status(url: str, timeout_s: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:  # 503: the worker says it is not alive
        return int(exc.code)


async def probe_health(url: str, timeout_s: float = 2.0) -> bool:
    """True when `url` answered 200 within `timeout_s`."""
    try:
        return await asyncio.to_thread(_get_status, url, timeout_s) == 200
    except (OSError, ValueError):  # refused, reset, timed out
        return False


@dataclass
class HealthWatch:
    """Consecutive failed polls per worker incarnation (keyed by `WorkerHandle.key`)."""

    failures: int = 3
    startup_grace_s: float = 600.0
    _answered: set[str] = field(default_factory=set)
    _failed: dict[str, int] = field(default_factory=dict)

    def unhealthy(self, key: str, ok: bool, age_s: float) -> bool:
        """Record one poll; True when the worker should be restarted now."""
        if ok:
            self._answered.add(key)
            self._failed.pop(key, None)
            return False
        if key not in self._answered and age_s < self.startup_grace_s:
            return False  # still loading its models
        self._failed[key] = self._failed.get(key, 0) + 1
        return self._failed[key] >= self.failures

    def failed_in_a_row(self, key: str) -> int:
        return self._failed.get(key, 0)

    def forget_all_but(self, keys: set[str]) -> None:
        self._answered &= keys
        self._failed = {k: v for k, v in self._failed.items() if k in keys}
