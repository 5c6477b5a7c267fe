"""streams.analytics.storage without a server: URL validation, and an unreachable server as a
StorageError."""

from __future__ import annotations

import socket

import pytest

from streams.analytics.migrations import quote_database
from streams.analytics.storage import connect
from streams.config import Settings
from streams.errors import ConfigError, StorageError


@pytest.mark.parametrize("url", ["ftp://host:21", "127.0.0.1:8123", "http://", "http://h:port"])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        connect(Settings(clickhouse_url=url))


def test_an_unreachable_server_is_a_storage_error_without_secrets() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Credentials in the URL are used (not ignored), a password may also come on its own;
    # neither may appear in the error. (Both at once is refused: tests/unit/test_secrets.py.)
    for settings in (Settings(clickhouse_url=f"http://user:url-secret@127.0.0.1:{port}"),
                     Settings(clickhouse_url=f"http://user@127.0.0.1:{port}",
                              clickhouse_password="pw-secret")):
        with pytest.raises(StorageError) as caught:
            connect(settings, timeout_s=1.0)
        assert caught.value.retriable
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "url-secret" not in str(caught.value) and "pw-secret" not in str(caught.value)


def test_database_names_are_plain_identifiers() -> None:
    assert quote_database("streamserve") == "`streamserve`"
    with pytest.raises(ConfigError):
        quote_database("x`; DROP TABLE y")
