"""The one error tree of streamserve. Each error says whether retrying the same thing may help."""

from __future__ import annotations


class StreamserveError(Exception):
    """Base of every error streamserve raises on purpose."""

    retriable: bool = False
    code: str = "internal"


class ConfigError(StreamserveError):
    """A setting is missing or contradicts another."""

    code = "config"


class StackError(StreamserveError):
    """The local Kafka stack could not be prepared, started or stopped."""

    code = "stack"


class PrerequisiteMissing(StackError):
    """A program the local stack needs (java, mvn) is not installed."""

    code = "prerequisite_missing"


class BrokerStartError(StackError):
    """A broker process exited or never answered; the message carries its log tail."""

    code = "broker_start"
    retriable = True


class StorageError(StreamserveError):
    """ClickHouse could not be reached or rejected a statement."""

    code = "storage"
    retriable = True
