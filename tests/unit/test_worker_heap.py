"""The worker's collector settings: start-up objects frozen, per-record garbage still freed."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import gc, weakref
from streams.worker.heap import GEN0_THRESHOLD, settle_heap
frozen = settle_heap()
assert frozen > 1000, frozen
assert gc.get_threshold()[0] == GEN0_THRESHOLD

class Node:
    pass

# A reference cycle made after start-up is still collected (gen 0 fills up and is swept).
first = Node(); first.other = Node(); first.other.other = first
alive = weakref.ref(first)
del first
keep = [[] for _ in range(GEN0_THRESHOLD + 10)]  # allocations (kept: a freed one uncounts)
assert alive() is None
print("ok")
"""


def test_settled_heap_still_collects_new_cycles() -> None:
    # A fresh interpreter: freezing and thresholds are process-wide.
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
