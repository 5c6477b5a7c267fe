"""aiokafka keyword arguments built from `Settings`: security, and safe producer defaults.

aiokafka defaults to `acks=1` without idempotence, which can lose or duplicate acknowledged
records on a leader change; every producer in streamserve goes through `producer_options`.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.config import Settings


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
    return {**security_options(settings), "group_id": group_id, "enable_auto_commit": False,
            "auto_offset_reset": "earliest"}
