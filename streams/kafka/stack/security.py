"""SASL/SCRAM and Kafka's StandardAuthorizer for the local stack.

Clients (and the brokers among themselves) talk `SASL_PLAINTEXT` with SCRAM-SHA-512 on the
broker port; the KRaft controller port is `SASL_PLAINTEXT` with PLAIN (the admin only), so no
unauthenticated principal is trusted anywhere. SCRAM credentials live in the cluster metadata,
so they are written at format time (`kafka-storage format --add-scram`), pre-salted here:
neither the format command line nor any log carries a plain password. The admin's plain
password is in each node's `server.properties` only (the brokers' own login), mode 600.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from streams.errors import StackError

SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192  # Kafka refuses fewer than 4096
CLIENT_LISTENER = "SASL_PLAINTEXT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The admin password sits inside a JAAS string inside a Java properties file: keep it to
# characters that need no escaping in either (no quote, backslash, space or control char).
_JAAS_SAFE = re.compile(r"[!#-\[\]-~]{8,256}")
_JAAS_PASSWORD = re.compile(r'password="([^"]*)"')


@dataclass(frozen=True)
class ScramUser:
    """A SCRAM principal (`User:<name>`) and its password."""

    name: str
    password: SecretStr

    def __post_init__(self) -> None:
        if not _SAFE_NAME.fullmatch(self.name):
            raise StackError(f"SCRAM user name {self.name!r} must be 1-64 of [A-Za-z0-9._-]")
        if not self.password.get_secret_value():
            raise StackError(f"SCRAM user {self.name!r} needs a password")

    @property
    def principal(self) -> str:
        return f"User:{self.name}"

    def format_argument(self, iterations: int = SCRAM_ITERATIONS) -> str:
        """The `--add-scram` value with a fresh salt and the salted password, never the plain one.

        SCRAM's SaltedPassword is PBKDF2-HMAC-SHA512(password, salt, iterations), the value
        Kafka stores; clients derive the same from the plain password at login."""
        salt = secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac("sha512", self.password.get_secret_value().encode(), salt,
                                     iterations)
        return (f"{SCRAM_MECHANISM}=[name={self.name},iterations={iterations},"
                f'salt="{_b64(salt)}",saltedpassword="{_b64(salted)}"]')


@dataclass(frozen=True)
class StackSecurity:
    """SCRAM users of a secured local stack; `admin` is the brokers' own login and super user."""

    admin: ScramUser
    users: tuple[ScramUser, ...] = ()

    def __post_init__(self) -> None:
        if not _JAAS_SAFE.fullmatch(self.admin.password.get_secret_value()):
            raise StackError("the local stack's admin password must be 8-256 printable ASCII "
                             "characters without quotes, backslashes or spaces")
        names = [user.name for user in self.all_users]
        if len(set(names)) != len(names):
            raise StackError(f"SCRAM user names must be unique, got {sorted(names)}")

    @property
    def all_users(self) -> tuple[ScramUser, ...]:
        return (self.admin, *self.users)

    def format_arguments(self) -> list[str]:
        """`kafka-storage format` arguments that create every user's SCRAM credential."""
        return [argument for user in self.all_users
                for argument in ("--add-scram", user.format_argument())]

    def server_properties(self, broker_port: int, controller_port: int,
                          host: str) -> dict[str, str]:
        """Listener, SASL and authorizer settings that replace the PLAINTEXT ones."""
        user, password = self.admin.name, self.admin.password.get_secret_value()
        scram_login = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                       f'username="{user}" password="{password}";')
        # SCRAM needs the metadata the controllers serve, so they authenticate each other and
        # the brokers with PLAIN: the JAAS entry is both the login and the one known user.
        plain_login = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                       f'username="{user}" password="{password}" user_{user}="{password}";')
        return {
            "listeners": f"{CLIENT_LISTENER}://{host}:{broker_port},"
                         f"CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"{CLIENT_LISTENER}://{host}:{broker_port}",
            "inter.broker.listener.name": CLIENT_LISTENER,
            "listener.security.protocol.map":
                f"{CLIENT_LISTENER}:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            f"listener.name.{CLIENT_LISTENER.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config":
                scram_login,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain_login,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "authorizer.class.name": AUTHORIZER,
            "super.users": self.admin.principal,
            "allow.everyone.if.no.acl.found": "false",
        }

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments that log in as the admin (the launcher's own checks)."""
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_plain_username": self.admin.name,
                "sasl_plain_password": self.admin.password.get_secret_value()}

    def redact(self, text: str) -> str:
        """`text` with every password of this stack replaced (for error messages we build)."""
        for user in self.all_users:
            text = text.replace(user.password.get_secret_value(), "**********")
        return text

    def describe(self) -> dict[str, Any]:
        """What `stack.json` records: the mechanism and the admin's name, never a password."""
        return {"mechanism": SCRAM_MECHANISM, "admin": self.admin.name}


def recorded_security(record: dict[str, Any] | None, properties_file: Path) -> StackSecurity | None:
    """The security of a stack from its `stack.json` entry and a node's own properties file.

    The admin password is read back from the file the launcher wrote (mode 600), so a restart,
    `status` or `down` needs no password in the environment."""
    if record is None:
        return None
    key = f"listener.name.{CLIENT_LISTENER.lower()}.{SCRAM_MECHANISM.lower()}.sasl.jaas.config="
    try:
        lines = properties_file.read_text().splitlines()
    except OSError as exc:
        raise StackError(f"the secured stack's {properties_file} is unreadable ({exc.strerror}); "
                         "remove the stack directory to start afresh") from exc
    for line in lines:
        found = _JAAS_PASSWORD.search(line) if line.startswith(key) else None
        if found is not None:
            return StackSecurity(ScramUser(str(record["admin"]), SecretStr(found.group(1))))
    raise StackError(f"{properties_file} has no SCRAM login for the admin; "
                     "remove the stack directory to start afresh")


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by its owner only (mode 600 from the first byte on)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
