"""The secured local stack without a broker: properties, SCRAM arguments, files, ACL sets."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.config import Settings
from streams.errors import ConfigError, StackError
from streams.kafka.stack import open_stack, stack_security
from streams.kafka.stack.acls import Operation, Pattern, Resource, tenant_acls, worker_acls
from streams.kafka.stack.broker import NodeSpec, render_server_properties, write_node_files
from streams.kafka.stack.cluster import LocalCluster
from streams.kafka.stack.security import ScramUser, StackSecurity

ADMIN_PASSWORD = "admin-Pw-0123456789"
USER_PASSWORD = "tenant pw with spaces \" and \\ quotes"


def _security() -> StackSecurity:
    return StackSecurity(ScramUser("admin", SecretStr(ADMIN_PASSWORD)),
                         (ScramUser("tenant-a", SecretStr(USER_PASSWORD)),))


def _parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_secured_properties_use_sasl_everywhere_and_the_authorizer(tmp_path: Path) -> None:
    node = NodeSpec(1, 19092, 19093, tmp_path)
    props = _parse(render_server_properties(node, [node], _security()))
    assert props["listeners"] == ("SASL_PLAINTEXT://127.0.0.1:19092,"
                                  "CONTROLLER://127.0.0.1:19093")
    assert props["listener.security.protocol.map"] == (
        "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith(".StandardAuthorizer")
    # No unauthenticated principal is trusted: only the admin is a super user.
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "PLAINTEXT://" not in props["advertised.listeners"].replace("SASL_PLAINTEXT", "")


def test_scram_arguments_carry_a_salted_password_only() -> None:
    arguments = _security().format_arguments()
    assert arguments[::2] == ["--add-scram", "--add-scram"]
    assert not any(ADMIN_PASSWORD in a or USER_PASSWORD in a for a in arguments)
    found = re.fullmatch(r'SCRAM-SHA-512=\[name=tenant-a,iterations=(\d+),'
                         r'salt="([^"]+)",saltedpassword="([^"]+)"\]', arguments[3])
    assert found is not None
    iterations, salt = int(found[1]), base64.b64decode(found[2])
    # What a client derives from the plain password at login (RFC 5802 Hi()).
    expected = hashlib.pbkdf2_hmac("sha512", USER_PASSWORD.encode(), salt, iterations)
    assert base64.b64decode(found[3]) == expected
    assert iterations >= 4096


def test_node_files_are_owner_only_and_state_holds_no_password(tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path, tmp_path / "libs", "4.1.1", security=_security())
    node = cluster.nodes[0].spec
    write_node_files(node, [node], cluster.security)
    assert stat.S_IMODE(node.properties_file.stat().st_mode) == 0o600
    cluster.save()
    state = (tmp_path / "stack.json").read_text()
    assert ADMIN_PASSWORD not in state and USER_PASSWORD not in state
    assert json.loads(state)["security"]["admin"] == "admin"

    loaded = LocalCluster.load(tmp_path)
    assert loaded is not None and loaded.security is not None
    assert loaded.security.admin.password.get_secret_value() == ADMIN_PASSWORD
    assert loaded.client_options()["sasl_plain_username"] == "admin"


def test_unsafe_admin_password_is_refused_without_echo() -> None:
    with pytest.raises(StackError) as raised:
        StackSecurity(ScramUser("admin", SecretStr('has"quote-and-more')))
    assert "quote-and-more" not in str(raised.value)
    with pytest.raises(StackError, match="user name"):
        ScramUser("bad,name", SecretStr("x"))


def test_stack_security_comes_from_the_sasl_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT"):
        stack_security(Settings())
    settings = Settings(data_dir=tmp_path, kafka_security_protocol="SASL_PLAINTEXT",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="root",
                        kafka_sasl_password=ADMIN_PASSWORD)
    assert stack_security(settings).admin.name == "root"
    plain = open_stack(settings)  # a new layout, not started
    plain.nodes[0].spec.directory.mkdir(parents=True)
    plain.save()
    with pytest.raises(StackError, match="is PLAINTEXT"):
        open_stack(settings, secure=True)


def test_worker_and_tenant_grants() -> None:
    settings = Settings()
    worker = {(a.resource, a.name, a.pattern, a.operation) for a in worker_acls(settings, "User:w")}
    assert (Resource.TOPIC, settings.requests_topic, Pattern.LITERAL, Operation.READ) in worker
    assert (Resource.GROUP, settings.consumer_group, Pattern.LITERAL, Operation.READ) in worker
    for topic in (settings.results_topic, settings.tokens_topic, settings.dlq_topic):
        assert (Resource.TOPIC, topic, Pattern.LITERAL, Operation.WRITE) in worker
    assert (Resource.TOPIC, "inference.replies.", Pattern.PREFIXED, Operation.WRITE) in worker
    assert (Resource.TOPIC, settings.control_topic, Pattern.LITERAL, Operation.READ) in worker
    assert (Resource.GROUP, "streamserve-", Pattern.PREFIXED, Operation.READ) in worker
    assert (Resource.TOPIC, settings.control_status_topic, Pattern.LITERAL,
            Operation.WRITE) in worker
    assert not any(op == Operation.READ and resource == Resource.TOPIC
                   and name not in {settings.requests_topic, settings.control_topic}
                   for resource, name, _, op in worker)

    tenant = {(a.resource, a.name, a.pattern, a.operation)
              for a in tenant_acls(settings, "User:a", "a")}
    reads = {name for resource, name, pattern, op in tenant if op == Operation.READ}
    assert reads == {"inference.replies.a"}
    assert all(pattern == Pattern.LITERAL for _, _, pattern, _ in tenant)
    assert (Resource.TOPIC, settings.requests_topic, Pattern.LITERAL, Operation.WRITE) in tenant
