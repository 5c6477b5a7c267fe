"""Logging for `streamserve` commands: our own lines readable, library chatter kept out of them."""

from __future__ import annotations

import logging

# Library chatter (group joins, service start/stop lines) buries our own output.
NOISY_LOGGERS = ("aiokafka", "faust", "mode", "streams.worker.app", "ContinuousBatchingLogger")


class BootstrapFailureFilter(logging.Filter):
    """Drops aiokafka's 'Unable connect to "host:port"' ERROR on a failed bootstrap.

    That failure always ends in an exception that the commands turn into one line naming the
    address and the fix (`streams.kafka.broker_check`); the log line before it says the same thing
    worse. Connection errors to a known node, later on, are a different message and pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Unable connect to \""))


def configure_logging(level: str, verbose: bool) -> None:
    logging.basicConfig(level="DEBUG" if verbose else level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose:
        return
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # aiokafka's client module logs under the bare "aiokafka" name; a logger's filters see
    # only the records created on it, so the filter goes exactly there.
    kafka = logging.getLogger("aiokafka")
    if not any(isinstance(f, BootstrapFailureFilter) for f in kafka.filters):
        kafka.addFilter(BootstrapFailureFilter())
