"""Processes the launcher started (brokers, registries): alive?, stop by PID, reap.

Never by name (no pkill): only the PIDs we recorded are signalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop_pid(pid: int, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to the process we started, wait for it, SIGKILL it if it lingers."""
    if not pid_alive(pid):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    logger.warning("process %d ignored signal %d for %.0fs; killing it", pid, sig, timeout_s)
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
