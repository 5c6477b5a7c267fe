"""What one consumed record produces (an `Outcome`), and how a failed publish is classified."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from streams.protocol.fit import Outgoing
from streams.worker.jobs import Source

OnSent = Callable[[dict[str, Any] | None], None]  # called with the result actually published
RejectedFor = Callable[[dict[str, Any], str, str], dict[str, Any]]  # (result, code, message)

# aiokafka raises these from send() (size, neither key nor value) or through the future (the
# broker's verdict on this record): the record cannot go as it is.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError,
              CorruptRecordException, AssertionError)
# The topic refuses us: missing (after the metadata wait), unauthorized, or an invalid name.
_REFUSED = (UnknownTopicOrPartitionError, TopicAuthorizationFailedError, InvalidTopicError)


def failure_kind(error: BaseException) -> str:
    """'too_large' (this record cannot go as it is), 'refused' (its topic refuses us), 'fatal'."""
    if isinstance(error, _TOO_LARGE):
        return "too_large"
    if isinstance(error, _REFUSED):
        return "refused"
    return "fatal"


@dataclass(frozen=True)
class Topics:
    results: str
    dlq: str
    tokens: str

    def own(self) -> set[str]:
        return {self.results, self.dlq, self.tokens}


@dataclass
class Outcome:
    """Everything one consumed record produces; finished when all of it is acknowledged."""

    source: Source
    records: list[Outgoing]
    result: dict[str, Any] | None  # the result among `records` (None: a dead letter alone)
    on_sent: OnSent | None
