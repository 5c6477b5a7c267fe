"""Errors of the model runtime, rooted in the service's one error tree."""

from __future__ import annotations

from streams.errors import StreamserveError


class ModelError(StreamserveError):
    """Base of the errors raised by `models/`."""

    code = "model"


class RegistryError(ModelError):
    """The registry file is missing, unreadable or invalid; the message names file and entry."""

    code = "registry"


class UnknownModel(ModelError):
    """No served model has that name (or that version of the name)."""

    code = "unknown_model"


class ModelLoadError(ModelError):
    """A registered model could not be located, converted or loaded."""

    code = "model_load"


class InvalidModelInput(ModelError, ValueError):
    """An input a runner cannot compute (e.g. classify without labels). Also a ValueError so
    callers that validate with `except ValueError` keep working; the service rejects the request."""

    code = "invalid_input"


class TransientModelError(ModelError):
    """A model call failed for a reason that may pass (device memory, a restarting engine):
    the service retries it a bounded number of times before giving up on the request."""

    code = "model_transient"
    retriable = True


# Transient failures of the runtimes we run, named here so the service never imports torch:
# torch.cuda.OutOfMemoryError (and torch.OutOfMemoryError) subclass RuntimeError.
_TRANSIENT_NAMES = frozenset({"OutOfMemoryError", "TransientModelError"})
_TRANSIENT_TEXT = ("out of memory", "CUDA error: an illegal memory access")


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same batch may succeed (device OOM, an engine restart, a timeout)."""
    if isinstance(error, TransientModelError | MemoryError | TimeoutError):
        return True
    if type(error).__name__ in _TRANSIENT_NAMES:
        return True
    return isinstance(error, RuntimeError) and any(t in str(error) for t in _TRANSIENT_TEXT)
