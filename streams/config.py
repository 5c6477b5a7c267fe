"""Effective configuration: one frozen `Settings`, read from `STREAMSERVE_*` environment variables.

Built once by the CLI (or a test) and passed down; no other module reads `os.environ`.
Secrets are `SecretStr` so they never reach a log line or `streamserve config` unmasked;
`load_settings` turns an invalid configuration into a `ConfigError` that names fields only.
Credentials written into a ClickHouse or registry URL are moved into the matching
username/password settings, so no URL kept here carries a password.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import ConfigError
from streams.redaction import mask_url, split_url_credentials, validation_summary

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
ENV_PREFIX = "STREAMSERVE_"
# URL settings whose `user:password@` part becomes these username/password settings.
_URL_CREDENTIALS = (("clickhouse_url", "clickhouse_username", "clickhouse_password"),
                    ("schema_registry_url", "schema_registry_username",
                     "schema_registry_password"))


class Settings(BaseSettings):
    """Every knob of a streamserve process. Field `x` is read from `STREAMSERVE_X`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", validate_default=True
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
    # The fleet's control plane (streams/control): compacted, one partition, every worker
    # reads all of it. Off only to measure what the control agent costs (bench).
    control_topic: str = "inference.control"
    control_status_topic: str = "inference.control.status"
    control_enabled: bool = True
    topic_partitions: int = Field(default=4, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1, le=16)

    # --- local Kafka launched by `streamserve stack` ---
    kafka_version: str = "4.4.0"
    kafka_pom: Path | None = None  # default: deploy/kafka/pom.xml of the source checkout
    kafka_libs_dir: Path | None = None  # default: .cache/kafka/<version>/libs
    kafka_heap: str = "512m"
    kafka_start_timeout_s: float = Field(default=60.0, gt=0)

    # --- schema registry (optional; the built-in catalogue is used without it) ---
    schema_registry_url: str | None = None
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None
    # Registry subject of each record: `<topic>-value` (what Confluent's clients use by
    # default), the record's full name, or `<topic>-<full name>`.
    schema_registry_subject_strategy: Literal[
        "TopicNameStrategy", "RecordNameStrategy", "TopicRecordNameStrategy"
    ] = "TopicNameStrategy"

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
    # Requests may ask for their result on a topic named <prefix><anything> (e.g. one per
    # tenant); empty = only the results topic. Internal and service topics are never allowed.
    reply_topic_prefix: str = "inference.replies."
    # Memory held by consumed, unanswered records: fetching pauses at either cap.
    max_in_flight_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    # Group rebalance timeout; default: the longest batch timeout of the served models + 30 s.
    rebalance_timeout_ms: int | None = Field(default=None, ge=10_000)

    # --- delivery (docs/guarantees.md) ---
    # exactly_once: results and dead letters of each input partition are committed together
    # with its offset in one Kafka transaction, as soon as answers are ready (at the latest
    # every `commit_interval_ms`); read_committed
    # readers see each answer once. at_least_once: answers as soon as they are ready, offsets
    # committed after, duplicates possible after a failure.
    delivery: Literal["at_least_once", "exactly_once"] = "at_least_once"
    commit_interval_ms: int = Field(default=100, ge=10, le=60_000)
    # Far above the commit interval: a transaction carries finished work only, never spans a
    # model call, so it stays open for one produce + commit round trip.
    transaction_timeout_ms: int = Field(default=60_000, ge=1_000)

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
    # OpenTelemetry traces through Kafka (README "Tracing"; needs `streamserve[tracing]`); the
    # exporter is configured by the standard OTEL_* variables.
    tracing: bool = False

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

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_urls(cls, data: Any) -> Any:
        """Use `user:password@` of a URL as the username/password, or refuse a second pair."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for url_field, user_field, password_field in _URL_CREDENTIALS:
            url = data.get(url_field)
            if not isinstance(url, str):
                continue
            split = split_url_credentials(url)
            if not split.present:
                continue
            for given, field in ((split.username, user_field), (split.password, password_field)):
                if given is not None and field in data:
                    raise ValueError(
                        f"{ENV_PREFIX}{url_field.upper()} carries a {field.rsplit('_', 1)[1]} "
                        f"and {ENV_PREFIX}{field.upper()} is set too: give it once "
                        "(best in that variable, not in the URL)")
            data[url_field] = split.url
            if split.username is not None:
                data[user_field] = split.username
            if split.password is not None:
                data[password_field] = split.password
        return data

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
        """The effective settings as plain values, every secret replaced by '**********'
        (and any `user:password@` left in a URL-like string too)."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********"
            elif isinstance(value, Path):
                shown[name] = str(value)
            elif isinstance(value, str):
                shown[name] = mask_url(value)
            else:
                shown[name] = value
        return shown


def load_settings(**overrides: Any) -> Settings:
    """`Settings()` from the environment (plus `overrides`); an invalid configuration raises
    a `ConfigError` whose text lists fields and error types, never an input value.

    `from None`: the pydantic error (which quotes inputs) is not chained into tracebacks."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        summary = validation_summary(Settings, exc, ENV_PREFIX)
    raise ConfigError(summary) from None
