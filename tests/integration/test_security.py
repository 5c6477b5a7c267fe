"""SASL/SCRAM and ACLs on a real broker started by the launcher (`security=` / `--security sasl`).

Principals: `admin` (super user: creates topics and ACLs), `worker` (reads requests in its
group; writes results, tokens, DLQ and `inference.replies.*`), and two tenants that write
requests and may read only their own reply topic. Passwords come from the environment.
TLS is not covered here (SASL_PLAINTEXT only); docs/security.md says how to add it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import TopicAuthorizationFailedError
from aiokafka.protocol.fetch import FetchRequest
from pydantic import SecretStr

from models.fake import FakeRunner, fake_spec
from models.fake_streaming import FakeStreamingGenerator
from streams.cli.main import main
from streams.client.library import new_request
from streams.config import Settings, load_settings
from streams.kafka.options import security_options
from streams.kafka.stack import LocalCluster
from streams.kafka.stack.acls import grant, reply_topic_of, tenant_acls, worker_acls
from streams.kafka.stack.jars import default_libs_dir
from streams.kafka.stack.security import ScramUser, StackSecurity
from streams.kafka.topics import TopicSpec, control_topics, ensure_topics, service_topics
from streams.wire.codec import request_codec, result_codec, token_codec
from streams.worker.served import ServedModel, ServedModels
from tests.integration.conftest import KAFKA_VERSION
from tests.integration.fault_harness import ROOT, WorkerProcess, wait_until, write_registry
from tests.integration.pipeline_harness import running_workers

USERS = ("worker", "tenant-a", "tenant-b")


@dataclasses.dataclass
class SecureStack:
    cluster: LocalCluster
    passwords: dict[str, str]

    def settings(self, user: str, **overrides: Any) -> Settings:
        return Settings(**self.env_values(user), **overrides)

    def env_values(self, user: str) -> dict[str, Any]:
        return {"kafka_bootstrap_servers": self.cluster.bootstrap_servers,
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": user,
                "kafka_sasl_password": self.passwords[user]}

    def env(self, user: str, password: str | None = None) -> dict[str, str]:
        values = {**self.env_values(user), "kafka_sasl_password": password or self.passwords[user]}
        return {f"STREAMSERVE_{key.upper()}": str(value) for key, value in values.items()}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    passwords = {name: secrets.token_urlsafe(18) for name in ("admin", *USERS)}
    security = StackSecurity(ScramUser("admin", SecretStr(passwords["admin"])),
                             tuple(ScramUser(n, SecretStr(passwords[n])) for n in USERS))
    cluster = LocalCluster.create(tmp_path_factory.mktemp("kafka-sasl"),
                                  default_libs_dir(KAFKA_VERSION), KAFKA_VERSION, heap="384m",
                                  security=security)
    cluster.up(timeout_s=90)
    try:
        yield SecureStack(cluster, passwords)
    finally:
        cluster.down(purge=True)


def _topics(suffix: str) -> dict[str, Any]:
    return {"requests_topic": f"req-{suffix}", "results_topic": f"res-{suffix}",
            "dlq_topic": f"dlq-{suffix}", "tokens_topic": f"tok-{suffix}",
            "consumer_group": f"workers-{suffix}", "topic_partitions": 2, "max_wait_ms": 20.0,
            "control_topic": f"ctl-{suffix}", "control_status_topic": f"ctls-{suffix}"}


async def _prepare(secure: SecureStack, worker: Settings, tenants: list[str]) -> None:
    """As the admin: the service topics, one reply topic per tenant, and every grant."""
    admin = secure.settings("admin", **_topics("unused"))
    replies = [TopicSpec(reply_topic_of(worker, t), 1) for t in tenants]
    await ensure_topics(admin, [*service_topics(worker), *control_topics(worker), *replies])
    acls = worker_acls(worker, "User:worker")
    for user, tenant in zip(("tenant-a", "tenant-b"), tenants, strict=False):
        acls += tenant_acls(worker, f"User:{user}", tenant)
    await grant(secure.cluster.client_options(), acls)


def _models() -> ServedModels:
    encoder = FakeRunner(fake_spec("encoder", tasks=("embed",), max_input_tokens=40))
    chat = FakeStreamingGenerator(dataclasses.replace(
        fake_spec("chat", tasks=("generate",), max_new_tokens=16), engine="continuous"),
        token_delay_s=0.0)
    return ServedModels.of([ServedModel("encoder", "1", encoder), ServedModel("chat", "1", chat)])


async def _send(settings: Settings, requests: list[dict[str, Any]],
                raw: tuple[bytes, ...] = ()) -> None:
    codec = request_codec()
    producer = AIOKafkaProducer(**security_options(settings), acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        for request in requests:
            await producer.send_and_wait(settings.requests_topic, codec.encode(request),
                                         key=request["request_id"].encode())
        for value in raw:
            await producer.send_and_wait(settings.requests_topic, value, key=b"raw")
    finally:
        await producer.stop()


async def _read(settings: Settings, topic: str, expected: int,
                timeout_s: float = 60.0) -> list[bytes]:
    """The first `expected` values of every partition of `topic`, read as `settings`' user."""
    consumer = AIOKafkaConsumer(**security_options(settings), group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(settings, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        async with asyncio.timeout(timeout_s):
            while len(values) < expected:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    values.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return values


async def _partitions(settings: Settings, topic: str) -> set[int]:
    producer = AIOKafkaProducer(**security_options(settings))
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def _fetch_error_code(settings: Settings, topic: str) -> int:
    """The broker's error code for a plain Fetch of partition 0 of `topic` as this user."""
    client = AIOKafkaClient(**security_options(settings))
    await client.bootstrap()
    try:
        node = next(iter(client.cluster.brokers())).nodeId  # one broker: the leader
        response = await client.send(node, FetchRequest(100, 1, 1 << 20, 0,
                                                        [(topic, [(0, 0, 1 << 20)])]))
        return int(response.topics[0][1][0][1])
    finally:
        await client.close()


async def test_pipeline_through_sasl_and_acls_and_tenants_are_isolated(
        secure: SecureStack, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = uuid.uuid4().hex[:8]
    for name, value in secure.env("worker").items():
        monkeypatch.setenv(name, value)
    worker = load_settings(**_topics(suffix))  # the SASL login comes from the environment
    assert worker.kafka_sasl_password is not None
    assert worker.kafka_sasl_password.get_secret_value() == secure.passwords["worker"]
    tenant_a, tenant_b = f"a-{suffix}", f"b-{suffix}"
    await _prepare(secure, worker, [tenant_a, tenant_b])
    as_a = secure.settings("tenant-a", **_topics(suffix))
    as_b = secure.settings("tenant-b", **_topics(suffix))
    reply_a, reply_b = reply_topic_of(worker, tenant_a), reply_topic_of(worker, tenant_b)

    async with running_workers(worker, 1, [_models()]):
        await _send(as_a, [new_request("encoder", "embed", text=f"a {i}", request_id=f"a{i}",
                                       reply_topic=reply_a) for i in range(10)]
                    + [new_request("chat", "generate", text="one two three", request_id="a-s",
                                   reply_topic=reply_a, stream=True)], raw=(b"not avro",))
        await _send(as_b, [new_request("encoder", "embed", text=f"b {i}", request_id=f"b{i}",
                                       reply_topic=reply_b) for i in range(5)])
        answers_a = [result_codec().decode(v) for v in await _read(as_a, reply_a, 11)]
        answers_b = [result_codec().decode(v) for v in await _read(as_b, reply_b, 5)]
        admin = secure.settings("admin", **_topics(suffix))
        dead = await _read(admin, worker.dlq_topic, 1)
        chunks = [token_codec().decode(v) for v in await _read(admin, worker.tokens_topic, 1)]

    assert {r["request_id"] for r in answers_a} == {f"a{i}" for i in range(10)} | {"a-s"}
    assert {r["status"] for r in answers_a + answers_b} == {"ok"}
    assert {r["request_id"] for r in answers_b} == {f"b{i}" for i in range(5)}
    assert dead == [b"not avro"]  # the worker may write the DLQ
    assert chunks and chunks[0]["request_id"] == "a-s"  # ... and the tokens topic

    # Tenant B cannot read tenant A's replies: the broker refuses the fetch itself, and the
    # topic's metadata. Tenant A, asking the same, is served.
    assert await _fetch_error_code(as_b, reply_a) == TopicAuthorizationFailedError.errno
    assert await _fetch_error_code(as_a, reply_a) == 0
    with pytest.raises(TopicAuthorizationFailedError):
        await _partitions(as_b, reply_a)
    # Nor read the service's shared results, nor write into A's reply topic.
    assert await _fetch_error_code(as_b, worker.results_topic) == (
        TopicAuthorizationFailedError.errno)
    producer = AIOKafkaProducer(**security_options(as_b))
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(reply_a, b"forged")
    finally:
        await producer.stop()


def _worker_command_env(env: dict[str, str], topics: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, **env,
            **{f"STREAMSERVE_{k.upper()}": str(v) for k, v in topics.items()}}


def test_wrong_password_is_one_clear_line(secure: SecureStack, tmp_path: Path) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(12)
    env = _worker_command_env(secure.env("worker", password=wrong), _topics("wrong"))
    env["STREAMSERVE_DATA_DIR"] = str(tmp_path)
    env["STREAMSERVE_MODEL_REGISTRY"] = str(write_registry(tmp_path, 0.0))  # cheap if it fails
    done = subprocess.run([sys.executable, "-m", "streams.cli", "worker"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1
    assert len(lines) == 1, lines
    assert "refused the SCRAM-SHA-512 login of user 'worker'" in lines[0]
    assert "wrong user name or password" in lines[0]
    assert wrong not in done.stdout + done.stderr


async def test_real_worker_process_serves_a_tenant_through_sasl(
        secure: SecureStack, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    worker = secure.settings("worker", **_topics(suffix))
    tenant = f"a-{suffix}"
    await _prepare(secure, worker, [tenant])
    process = WorkerProcess("sasl-w1", worker, write_registry(tmp_path, 0.0),
                            tmp_path / "worker.log", extra_env=secure.env("worker")).start()
    try:
        await wait_until(lambda: len(process.partitions()) == 2, 90, "the worker's partitions")
        as_a = secure.settings("tenant-a", **_topics(suffix))
        reply = reply_topic_of(worker, tenant)
        await _send(as_a, [new_request("encoder", "embed", text=f"x {i}", request_id=f"p{i}",
                                       reply_topic=reply) for i in range(20)])
        answers = [result_codec().decode(v) for v in await _read(as_a, reply, 20)]
    finally:
        process.stop()
    assert sorted(r["request_id"] for r in answers) == sorted(f"p{i}" for i in range(20))
    assert {r["status"] for r in answers} == {"ok"}
    log = (tmp_path / "worker.log").read_text()
    assert secure.passwords["worker"] not in log


def test_stack_up_with_security_sasl_from_the_command_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    password = secrets.token_urlsafe(18)
    for name, value in {"STREAMSERVE_DATA_DIR": str(tmp_path),
                        "STREAMSERVE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                        "STREAMSERVE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "STREAMSERVE_KAFKA_SASL_USERNAME": "admin",
                        "STREAMSERVE_KAFKA_SASL_PASSWORD": password,
                        "STREAMSERVE_KAFKA_HEAP": "384m"}.items():
        monkeypatch.setenv(name, value)
    try:
        assert main(["stack", "up", "--security", "sasl"]) == 0
        bootstrap = capsys.readouterr().out.split("bootstrap: ")[1].split()[0]
        properties = next(tmp_path.rglob("server.properties"))
        assert properties.stat().st_mode & 0o077 == 0  # it holds the admin's login
        for path in tmp_path.rglob("*"):  # state, logs: no password anywhere else
            if path.is_file() and path != properties and path.suffix in {".json", ".log"}:
                assert password not in path.read_text(errors="replace"), path
        monkeypatch.setenv("STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        assert main(["topics", "create"]) == 0  # the same environment logs in as the admin
        assert "inference.requests: 4 partitions" in capsys.readouterr().out
        monkeypatch.setenv("STREAMSERVE_KAFKA_SASL_PASSWORD", "not-" + password)
        assert main(["worker"]) == 1
        assert "wrong user name or password" in capsys.readouterr().err
        assert main(["stack", "up"]) == 1  # a recorded secured stack is not silently plain
        assert "secured (SASL)" in capsys.readouterr().err
    finally:
        assert main(["stack", "down", "--purge"]) == 0
