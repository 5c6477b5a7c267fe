"""aiokafka keyword arguments built from `Settings`: security, and safe producer defaults.

aiokafka defaults to `acks=1` without idempotence, which can lose or duplicate acknowledged
records on a leader change; every producer in streamserve goes through `producer_options`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.config import Settings
from streams.errors import ConfigError


def security_options(settings: Settings) -> dict[str, Any]:
    """SASL/TLS options shared by producers, consumers and admin clients."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "client_id": settings.kafka_client_id,
    }
    if settings.kafka_security_protocol in {"SSL", "SASL_SSL"}:
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile is not None:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
                settings.kafka_ssl_key_password.get_secret_value()
                if settings.kafka_ssl_key_password else None,
            )
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism is not None:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def producer_options(settings: Settings) -> dict[str, Any]:
    """At-least-once producer: every in-sync replica acknowledges, retries never duplicate."""
    return {**security_options(settings), "acks": "all",
            "enable_idempotence": settings.kafka_enable_idempotence,
            "linger_ms": 5, "max_batch_size": 256 * 1024}


def consumer_options(settings: Settings, group_id: str | None) -> dict[str, Any]:
    """Manual commits only: offsets move after the work they cover is acknowledged."""
    return {**reader_options(settings), "group_id": group_id, "enable_auto_commit": False,
            "auto_offset_reset": "earliest"}


def reader_options(settings: Settings) -> dict[str, Any]:
    """What every consumer the project ships reads with: under exactly-once delivery only
    committed transactions (results of an aborted or fenced transaction stay invisible)."""
    isolation = "read_committed" if settings.delivery == "exactly_once" else "read_uncommitted"
    return {**security_options(settings), "isolation_level": isolation}


def transactional_producer_options(settings: Settings, transactional_id: str) -> dict[str, Any]:
    """A producer whose records become visible only with its transaction's commit. Its
    `start()` (InitProducerId) fences any earlier producer of the same id: a zombie owner."""
    return {**producer_options(settings), "enable_idempotence": True,
            "transactional_id": transactional_id,
            "transaction_timeout_ms": settings.transaction_timeout_ms,
            # A transaction's records go out at its commit anyway: no linger. And the next
            # transaction of a partition meets CONCURRENT_TRANSACTIONS until the coordinator
            # wrote the previous one's markers (a few ms): retry soon, not after 100 ms.
            "linger_ms": 0, "retry_backoff_ms": 10}


async def check_login(settings: Settings, timeout_s: float = 10.0) -> None:
    """Log in to the first reachable bootstrap server; a refused login is a `ConfigError`.

    aiokafka only logs why a login failed and then raises "Unable to bootstrap", a traceback
    that does not say "wrong password"; this check says it in one line, and early. Servers
    that cannot be reached are left for the real clients to report.
    """
    if settings.kafka_sasl_mechanism is None:
        return
    options = security_options(settings)
    login = {key: options[key] for key in ("security_protocol", "ssl_context", "sasl_mechanism",
                                           "sasl_plain_username", "sasl_plain_password")
             if key in options}
    for address in settings.kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            connection = await asyncio.wait_for(
                create_conn(host.strip("[]"), int(port), client_id=settings.kafka_client_id,
                            request_timeout_ms=int(timeout_s * 1000), **login), timeout_s)
        except (SaslAuthenticationFailed, IllegalSaslStateError,
                UnsupportedSaslMechanismError) as exc:
            reason = ("wrong user name or password" if isinstance(exc, SaslAuthenticationFailed)
                      else type(exc).__name__)
            raise ConfigError(
                f"Kafka at {address.strip()} refused the {settings.kafka_sasl_mechanism} login "
                f"of user {settings.kafka_sasl_username!r}: {reason} (check "
                "STREAMSERVE_KAFKA_SASL_USERNAME and STREAMSERVE_KAFKA_SASL_PASSWORD)") from None
        except (OSError, KafkaError, TimeoutError, ValueError):
            continue
        connection.close()
        return
