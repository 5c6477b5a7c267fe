"""Each path that could print a secret is made to try, and must not.

Validation errors, `streamserve config`, reprs, URL credentials of ClickHouse and the schema
registry (used, never echoed), and the messages built when a server cannot be reached.
"""

from __future__ import annotations

import base64
import http.server
import threading
import traceback
from collections.abc import Iterator

import pytest

from streams.analytics.storage import connect_server
from streams.cli.main import main
from streams.config import Settings, load_settings
from streams.errors import ConfigError, SchemaRegistryError, StorageError
from streams.kafka.stack.broker import free_port
from streams.redaction import mask_url, split_url_credentials
from streams.wire.schema_registry import SchemaRegistryClient

SECRET = "Sup3r-Secret-Value"


def _everything(exc: BaseException) -> str:
    """The text a traceback of `exc` would show, chained causes included."""
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("env", [
    # The model-level SASL rule fails: pydantic's own text quotes the whole input dict.
    {"STREAMSERVE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
     "STREAMSERVE_KAFKA_SASL_USERNAME": "svc", "STREAMSERVE_KAFKA_SASL_PASSWORD": SECRET},
    # A field error next to a password.
    {"STREAMSERVE_TOPIC_PARTITIONS": "0", "STREAMSERVE_CLICKHOUSE_PASSWORD": SECRET},
    # The secret is itself the invalid input (a URL that is not one, with a password in it).
    {"STREAMSERVE_CLICKHOUSE_URL": f"http://svc:{SECRET}@h:8123",
     "STREAMSERVE_CLICKHOUSE_PASSWORD": "second-password"},
    {"STREAMSERVE_SCHEMA_REGISTRY_URL": f"https://svc:{SECRET}@registry",
     "STREAMSERVE_SCHEMA_REGISTRY_USERNAME": "other"},
    {"STREAMSERVE_SCHEMA_REGISTRY_URL": f"https://svc:{SECRET}@registry",
     "STREAMSERVE_SCHEMA_REGISTRY_PASSWORD": "other"},
])
def test_invalid_configuration_never_echoes_a_secret(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert SECRET not in _everything(raised.value)
    assert "invalid configuration" in str(raised.value)

    assert main(["config"]) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert captured.err.startswith("streamserve: invalid configuration:")


def test_validation_summary_names_field_and_rule_but_not_the_input(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMSERVE_TOPIC_PARTITIONS", "-73")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    text = str(raised.value)
    assert "topic_partitions (STREAMSERVE_TOPIC_PARTITIONS): greater_than_equal" in text
    assert "-73" not in text


def test_a_secret_field_with_a_bad_type_shows_only_the_error_type() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(kafka_sasl_password=[SECRET])  # not a string: pydantic would quote it
    assert "kafka_sasl_password (STREAMSERVE_KAFKA_SASL_PASSWORD): string_type" in str(
        raised.value)
    assert SECRET not in _everything(raised.value)


@pytest.mark.parametrize(("url_field", "user_field", "password_field"), [
    ("clickhouse_url", "clickhouse_username", "clickhouse_password"),
    ("schema_registry_url", "schema_registry_username", "schema_registry_password"),
])
def test_url_credentials_become_the_login_and_leave_the_url(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        url_field: str, user_field: str, password_field: str) -> None:
    monkeypatch.setenv(f"STREAMSERVE_{url_field.upper()}", f"http://al%40ice:{SECRET}@db:8123/")
    settings = load_settings()
    assert getattr(settings, url_field) == "http://db:8123/"
    assert getattr(settings, user_field) == "al@ice"
    assert getattr(settings, password_field).get_secret_value() == SECRET
    assert SECRET not in repr(settings) + str(settings) + str(settings.masked())

    assert main(["config"]) == 0
    assert SECRET not in capsys.readouterr().out


def test_masked_hides_userinfo_that_skipped_validation() -> None:
    # model_copy(update=...) does not validate: the URL keeps its userinfo, masked() must not.
    settings = Settings().model_copy(update={"clickhouse_url": f"http://u:{SECRET}@h:1"})
    assert settings.masked()["clickhouse_url"] == "http://**********@h:1"


def test_url_helpers() -> None:
    split = split_url_credentials("https://user:p%3Ass@host:8443/path?q=1")
    assert (split.url, split.username, split.password) == (
        "https://host:8443/path?q=1", "user", "p:ss")
    assert not split_url_credentials("http://host:8123").present
    assert split_url_credentials("http://token@host").password is None
    assert mask_url(f"see http://a:{SECRET}@h:1/x and ftp://b@h") == (
        "see http://**********@h:1/x and ftp://**********@h")


def test_clickhouse_error_with_url_credentials_shows_none(tmp_path: object) -> None:
    settings = Settings().model_copy(update={
        "clickhouse_url": f"http://svc:{SECRET}@127.0.0.1:{free_port()}"})
    with pytest.raises(StorageError) as raised:
        connect_server(settings, timeout_s=1)
    assert "cannot reach ClickHouse at http://127.0.0.1:" in str(raised.value)
    assert SECRET not in _everything(raised.value)


def test_clickhouse_refuses_two_passwords() -> None:
    settings = Settings(clickhouse_password="one").model_copy(update={
        "clickhouse_url": f"http://svc:{SECRET}@127.0.0.1:1"})
    with pytest.raises(ConfigError, match="give it once") as raised:
        connect_server(settings, timeout_s=1)
    assert SECRET not in _everything(raised.value)


@pytest.fixture
def registry_stub() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers 404 and records each Authorization header."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = b'{"error_code": 40403, "message": "Schema not found"}'
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_registry_url_credentials_are_sent_as_basic_auth_and_never_shown(
        registry_stub: tuple[str, list[str]]) -> None:
    address, seen = registry_stub
    client = SchemaRegistryClient(f"http://svc:{SECRET}@{address}/")
    assert client.url == f"http://{address}"
    assert SECRET not in repr(client)
    with pytest.raises(SchemaRegistryError) as raised:
        client.get_schema(7)
    assert seen == ["Basic " + base64.b64encode(f"svc:{SECRET}".encode()).decode()]
    assert "HTTP 404" in str(raised.value)
    assert SECRET not in _everything(raised.value)


def test_registry_unreachable_error_shows_no_credentials() -> None:
    client = SchemaRegistryClient(f"http://svc:{SECRET}@127.0.0.1:{free_port()}")
    with pytest.raises(SchemaRegistryError) as raised:
        client.get_schema(1)
    assert raised.value.retriable
    assert SECRET not in _everything(raised.value)


def test_registry_refuses_credentials_twice() -> None:
    with pytest.raises(ConfigError, match="give them once") as raised:
        SchemaRegistryClient(f"http://svc:{SECRET}@h", username="svc", password=SECRET)
    assert SECRET not in _everything(raised.value)
