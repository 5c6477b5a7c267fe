"""Keep triton out of a process that runs every model on the CPU.

torch imports triton only to ask whether it is installed, when `torch._dynamo` loads
(transformers' masking utilities import it). Triton compiles GPU kernels, so a CPU-only worker
never uses it, but its compiled extension stays loaded, and at interpreter exit it prints
about 30 lines of `nanobind: leaked 514 functions` / `leaked 64 types`, which read like a crash
(measured: `streamserve worker` with the two registry models, SIGTERM, stderr at exit).
Blocking the import makes torch answer "not installed", as it would on a machine without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable


def keep_triton_unloaded(devices: Iterable[str],
                         cuda_available: Callable[[], bool] | None = None) -> bool:
    """When every device is "cpu" (or "auto" on a machine without CUDA), make `import triton`
    fail; returns whether it is blocked.

    Call before transformers loads; once triton is imported this changes nothing."""
    if "triton" in sys.modules:
        return sys.modules["triton"] is None
    others = {device for device in devices if device != "cpu"}
    if others - {"auto"} or (others and (cuda_available or _torch_sees_cuda)()):
        return False
    # A None entry in sys.modules is the import system's own "refuse this module" marker:
    # `import triton` raises ModuleNotFoundError, `importlib.util.find_spec` returns None.
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True


def _torch_sees_cuda() -> bool:
    import torch  # torch alone does not import triton; torch._dynamo (via transformers) does

    return bool(torch.cuda.is_available())
