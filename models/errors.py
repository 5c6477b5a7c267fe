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
