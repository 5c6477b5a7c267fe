"""Effective configuration: one frozen `Settings`, read from `STREAMSERVE_*` environment variables.

Built once by the CLI (or a test) and passed down; no other module reads `os.environ`.
Secrets are `SecretStr` so they never reach a log line or `streamserve config` unmasked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]


class Settings(BaseSettings):
    """Every knob of a streamserve process. Field `x` is read from `STREAMSERVE_X`."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMSERVE_", frozen=True, extra="forbid", validate_default=True
    )

    # --- where local state lives (broker data, chDB files, model caches) ---
    data_dir: Path = Path(".streamserve")

    # --- Kafka connection ---
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_client_id: str = "streamserve"
    # Idempotent producers (the safe default). Off only for brokers without InitProducerId,
    # e.g. the single-binary tansu broker of the GPU bench (bench/gpu/README.md).
    kafka_enable_idempotence: bool = True
    consumer_group: str = "streamserve-workers"

    # --- topics ---
    requests_topic: str = "inference.requests"
    results_topic: str = "inference.results"
    dlq_topic: str = "inference.dlq"
    tokens_topic: str = "inference.tokens"
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1, le=16)

    # --- local Kafka launched by `streamserve stack` ---
    kafka_version: str = "4.1.1"
    kafka_pom: Path | None = None  # default: deploy/kafka/pom.xml of the source checkout
    kafka_libs_dir: Path | None = None  # default: .cache/kafka/<version>/libs
    kafka_heap: str = "512m"
    kafka_start_timeout_s: float = Field(default=60.0, gt=0)

    # --- schema registry (optional; the built-in catalogue is used without it) ---
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None

    # --- ClickHouse: embedded chDB unless a URL is configured ---
    clickhouse_url: str | None = None  # e.g. http://127.0.0.1:8123
    clickhouse_username: str = "default"
    clickhouse_password: SecretStr | None = None
    clickhouse_database: str = "streamserve"
    clickhouse_chdb_path: Path | None = None  # default: <data_dir>/chdb

    # --- models and batching ---
    model_registry: Path | None = None  # default: models/registry.toml shipped with the package
    models: str = ""  # comma-separated names to serve; empty = every registry entry
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    max_wait_ms: float = Field(default=10.0, ge=0, le=60_000)
    max_batch_tokens: int = Field(default=8192, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    registry_reload_s: float = Field(default=5.0, ge=0)  # poll the registry file; 0 = never

    # --- worker process ---
    worker_id: str | None = None  # stable name -> static group membership (see below)
    # Static membership (group.instance.id = worker_id): a quick restart under the same id
    # keeps its partitions without a group rebalance. A worker removed for good (autoscaler
    # scale-down) should not use it: a static member does not leave the group on exit, so its
    # partitions would sit idle until the session timeout.
    static_membership: bool = True
    request_log: bool = True  # one ClickHouse row per request (STREAMSERVE_REQUEST_LOG=false: off)
    web_host: str = "127.0.0.1"  # 0.0.0.0 only inside a container (compose.yaml sets it)
    web_port: int = Field(default=6066, ge=0, le=65535)
    log_level: str = "INFO"

    # --- autoscaling (`streamserve up --workers auto`) and capacity planning (`plan`) ---
    autoscale_min_replicas: int = Field(default=1, ge=1, le=1024)
    autoscale_max_replicas: int = Field(default=4, ge=1, le=1024)  # also capped by partitions
    autoscale_target_drain_s: float = Field(default=30.0, gt=0)  # clear a backlog within this
    autoscale_poll_s: float = Field(default=5.0, gt=0)
    autoscale_downscale_window_s: float = Field(default=120.0, ge=0)  # like HPA stabilization
    autoscale_replica_throughput: float = Field(default=1.0, gt=0)  # model-s/s, until measured
    autoscale_lag_threshold: int = Field(default=100, ge=1)  # KEDA's lagThreshold (comparison)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return upper

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and self.kafka_sasl_mechanism is None:
            raise ValueError(
                "kafka_security_protocol uses SASL but STREAMSERVE_KAFKA_SASL_MECHANISM is not set"
            )
        if self.kafka_sasl_mechanism in {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} and (
            self.kafka_sasl_username is None or self.kafka_sasl_password is None
        ):
            raise ValueError(
                f"SASL mechanism {self.kafka_sasl_mechanism} needs "
                "STREAMSERVE_KAFKA_SASL_USERNAME and STREAMSERVE_KAFKA_SASL_PASSWORD"
            )
        return self

    @property
    def chdb_path(self) -> Path:
        return self.clickhouse_chdb_path or self.data_dir / "chdb"

    @property
    def served_models(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, every secret replaced by '**********'."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        return shown
