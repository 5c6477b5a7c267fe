"""The ClickHouse client of streamserve: embedded chDB by default, a real server when a URL is set.

Both paths return a `clickhouse_connect` `Client`, so every query, insert and migration is the
same code against either. chDB is reached through `clickhouse_connect.get_client(interface='chdb',
path=...)` (clickhouse-connect >= 1.x ships that backend; it needs the `chdb` package).

chDB rules, enforced by the engine and surfaced here as typed errors:
- ONE data path per process: a second client on the same path shares the engine; a client on a
  different path while one is open fails (`StorageError`). Closing every client releases the engine,
  after which the process may open the path again (or another one).
- ONE process per path: the engine holds an exclusive `flock` on `<path>/status` while open; a
  second process gets `StorageLockedError` naming the holder's PID. Give every worker/test its own
  path, or run one writer and point the others at a server.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.config import Settings
from streams.errors import ConfigError, StorageError, StorageLockedError
from streams.redaction import mask_url, split_url_credentials

logger = logging.getLogger(__name__)

ClientFactory = Callable[[], Client]


def connect(settings: Settings, *, timeout_s: float = 10.0) -> Client:
    """Open a client on the configured target: a server when `clickhouse_url` is set, else chDB.

    The client has no default database: every statement qualifies its tables with
    `settings.clickhouse_database`, because that database may not exist before migration 1.
    """
    if settings.clickhouse_url:
        return connect_server(settings, timeout_s=timeout_s)
    return connect_chdb(settings.chdb_path)


def client_factory(settings: Settings, *, timeout_s: float = 10.0) -> ClientFactory:
    """A zero-argument factory for code that (re)connects lazily, e.g. the request-log sink."""
    return lambda: connect(settings, timeout_s=timeout_s)


def connect_chdb(path: Path) -> Client:
    """Open (creating) the chDB engine at `path`. One path per process, one process per path."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return clickhouse_connect.get_client(interface="chdb", path=str(path))
    except ClickHouseError as exc:
        holder = _lock_holder(path)
        if holder is not None:
            raise StorageLockedError(
                f"chDB path {path} is locked by another process ({holder}); chDB allows one "
                "process per path: give this process its own STREAMSERVE_CLICKHOUSE_CHDB_PATH "
                "or set STREAMSERVE_CLICKHOUSE_URL to a server"
            ) from exc
        raise StorageError(f"cannot open chDB at {path}: {exc}") from exc


def connect_server(settings: Settings, *, timeout_s: float = 10.0) -> Client:
    """Open an HTTP(S) client on `settings.clickhouse_url` (http://host:8123, https://host:8443).

    `Settings` moves `user:password@` of the URL into the username/password settings; a URL
    that still carries them (a `model_copy` skips validation) is used the same way."""
    split = split_url_credentials(settings.clickhouse_url or "")
    username, password = _server_login(settings, split.username, split.password)
    parts = urlsplit(split.url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError("STREAMSERVE_CLICKHOUSE_URL must look like http(s)://host:port")
    secure = parts.scheme == "https"
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise ConfigError("STREAMSERVE_CLICKHOUSE_URL has an invalid port") from exc
    shown = f"{parts.scheme}://{parts.hostname}:{port}"  # never echo userinfo from the URL
    try:
        return clickhouse_connect.get_client(
            host=parts.hostname,
            port=port,
            username=username,
            password=password,
            secure=secure,
            connect_timeout=timeout_s,
            send_receive_timeout=max(timeout_s, 30.0),
        )
    except ClickHouseError as exc:
        raise StorageError(f"cannot reach ClickHouse at {shown}: "
                           f"{_scrubbed(str(exc), password)}") from exc


def _scrubbed(text: str, password: str) -> str:
    """The driver's message with any URL userinfo and the password itself masked."""
    text = mask_url(text)
    return text.replace(password, "**********") if password else text


def _server_login(settings: Settings, url_user: str | None,
                  url_password: str | None) -> tuple[str, str]:
    """The username and password for the server: from the settings or from the URL, not both."""
    configured = settings.clickhouse_password
    if url_password is not None and configured is not None:
        raise ConfigError("STREAMSERVE_CLICKHOUSE_URL carries a password and "
                          "STREAMSERVE_CLICKHOUSE_PASSWORD is set too: give it once")
    password = url_password if url_password is not None else (
        configured.get_secret_value() if configured is not None else "")
    return url_user or settings.clickhouse_username, password


def _lock_holder(path: Path) -> str | None:
    """Describe the process holding chDB's `status` lock on `path`, or None when it is free.

    Only called after an open failed: probing while this process holds the engine would report
    our own lock (flock is per open file description).
    """
    status = path / "status"
    try:
        with status.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                first = handle.read(200).decode(errors="replace").splitlines()
                return first[0] if first else "unknown pid"
            fcntl.flock(handle, fcntl.LOCK_UN)
    except FileNotFoundError:
        return None
    return None
