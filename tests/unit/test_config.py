"""Settings: environment parsing, validation and secret masking."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from streams.cli.main import main
from streams.config import Settings


def test_defaults_are_local_and_plaintext() -> None:
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert settings.clickhouse_url is None
    assert settings.chdb_path == settings.data_dir / "chdb"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSERVE_TOPIC_PARTITIONS", "12")
    monkeypatch.setenv("STREAMSERVE_MODELS", "minilm, smollm2")
    monkeypatch.setenv("STREAMSERVE_LOG_LEVEL", "debug")
    settings = Settings()
    assert settings.topic_partitions == 12
    assert settings.served_models == ["minilm", "smollm2"]
    assert settings.log_level == "DEBUG"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.topic_partitions = 3  # type: ignore[misc]


@pytest.mark.parametrize(("name", "value"), [
    ("STREAMSERVE_TOPIC_PARTITIONS", "0"),
    ("STREAMSERVE_MAX_BATCH_SIZE", "-1"),
    ("STREAMSERVE_LOG_LEVEL", "loud"),
    ("STREAMSERVE_KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON"),
])
def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch, name: str,
                                     value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_sasl_requires_mechanism_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSERVE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError, match="SASL_MECHANISM"):
        Settings()
    monkeypatch.setenv("STREAMSERVE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(ValidationError, match="USERNAME"):
        Settings()


def test_secrets_are_masked_everywhere(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STREAMSERVE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("STREAMSERVE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("STREAMSERVE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("STREAMSERVE_KAFKA_SASL_PASSWORD", "kafka-secret-1")
    monkeypatch.setenv("STREAMSERVE_CLICKHOUSE_PASSWORD", "ch-secret-2")
    settings = Settings()
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "kafka-secret-1"
    assert "kafka-secret-1" not in repr(settings) and "ch-secret-2" not in str(settings)

    assert main(["config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kafka_sasl_password"] == "**********"
    assert printed["clickhouse_password"] == "**********"
    assert printed["kafka_sasl_username"] == "svc"
