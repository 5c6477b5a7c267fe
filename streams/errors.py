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


class BrokerUnreachable(StreamserveError):
    """No Kafka broker answered at the configured bootstrap address."""

    code = "broker_unreachable"
    retriable = True


class StorageError(StreamserveError):
    """ClickHouse could not be reached or rejected a statement."""

    code = "storage"
    retriable = True


class CodecError(StreamserveError):
    """Bytes could not become a record or a record could not become bytes."""

    code = "codec"


class DecodeError(CodecError):
    """A payload is not a valid framed Avro record of the expected subject.

    `reason` is machine-readable (DLQ headers, metric labels): one of `empty`, `bad_magic`,
    `unknown_schema`, `wrong_subject`, `corrupt`. Retrying the same bytes never helps.
    """

    code = "decode_error"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EncodeError(CodecError):
    """A record does not match its schema: a bug in the code that built it."""

    code = "encode_error"


class InvalidRequest(StreamserveError):
    """A decoded request breaks a rule; answered with a `rejected` result, never retried.

    `code` is per instance: invalid_parameters, invalid_input, empty_input, input_too_long,
    unknown_task, unknown_model, invalid_request_id.
    """

    code = "invalid_request"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StorageLockedError(StorageError):
    """The chDB data path is held by another process (chDB allows one process per path)."""

    code = "storage_locked"
    retriable = False


class SpoolError(StorageError):
    """The local spool file of a sink could not be opened, written or replayed."""

    code = "spool"
    retriable = False


class SchemaRegistryError(StreamserveError):
    """The schema registry refused a request or could not be reached (then retriable)."""

    code = "schema_registry"

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable
