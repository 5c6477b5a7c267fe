"""What a worker's `/health` and `/ready` say, and why (pure: no I/O, no framework).

- **alive** (`/health`): no unrecoverable fault. A fault is something the process cannot fix by
  itself — a supervised task that died past its restart budget, a model call that hung past its
  batch timeout, a publish that failed after the producer's retries. `/health` answers 503 with
  the reasons, so Kubernetes (liveness probe) or `streamserve up` restarts the process.
- **ready** (`/ready`): alive, every named check passed (models loaded, partitions assigned), and
  nothing is holding the worker back (an open circuit breaker of a model). Not ready means "do
  not count on me now", not "restart me".
"""

from __future__ import annotations

import threading
from typing import Any


class Health:
    def __init__(self, checks: tuple[str, ...] = ("models_loaded",)) -> None:
        self._lock = threading.Lock()  # faults may be raised from model or sink threads
        self._checks = dict.fromkeys(checks, False)
        self._faults: dict[str, str] = {}  # component -> reason
        self._holds: dict[str, str] = {}  # component -> why it is not ready

    # ---- readiness checks and holds ------------------------------------------------------
    def set(self, check: str, ok: bool) -> None:
        with self._lock:
            self._checks[check] = ok

    def hold(self, component: str, reason: str) -> None:
        """Not ready because of `component` (e.g. a model's open circuit breaker)."""
        with self._lock:
            self._holds[component] = reason

    def release(self, component: str) -> None:
        with self._lock:
            self._holds.pop(component, None)

    # ---- faults --------------------------------------------------------------------------
    def fail(self, component: str, reason: str) -> None:
        """An unrecoverable fault of `component`: the worker is no longer alive."""
        with self._lock:
            self._faults.setdefault(component, reason)

    def recover(self, component: str) -> None:
        """`component` works again (e.g. a hung model call returned after all)."""
        with self._lock:
            self._faults.pop(component, None)

    @property
    def alive(self) -> bool:
        return not self._faults

    @property
    def ready(self) -> bool:
        with self._lock:
            return not self._faults and not self._holds and all(self._checks.values())

    def is_alive(self) -> bool:
        return self.alive

    def health_body(self) -> dict[str, Any]:
        """JSON body of `/health`: {"alive": bool, "faults": {component: reason}}."""
        with self._lock:
            return {"alive": not self._faults, "faults": dict(self._faults)}

    def is_ready(self) -> dict[str, Any]:
        """JSON body of `/ready`: {"ready", "checks", "holds", "faults"}."""
        with self._lock:
            ready = not self._faults and not self._holds and all(self._checks.values())
            return {"ready": ready, "checks": dict(self._checks), "holds": dict(self._holds),
                    "faults": dict(self._faults)}
