"""OpenMP's wait policy for the torch thread pool, which must be chosen before torch loads.

libgomp's default lets idle pool threads spin for a while. When the cores are shared (the
worker's event loop, the Kafka client, a broker or a second worker on the same host), spinning
threads steal the CPU the others need, and one descheduled thread stalls every parallel
region: measured on 2 busy cores, a SmolLM2 batch with 2 torch threads took 71.4 s spinning
against 8.4 s passive (bench/README.md). PASSIVE is the worker's default; an explicit
OMP_WAIT_POLICY in the environment wins.
"""

from __future__ import annotations

import os
import sys


def prefer_passive_waiting() -> str:
    """Set OMP_WAIT_POLICY=PASSIVE unless the environment chose; returns the policy in force.

    Has no effect once torch is imported (libgomp has read it): call before loading models.
    """
    if "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        return "default (torch already loaded)"
    return os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
