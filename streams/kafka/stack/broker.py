"""One Apache Kafka KRaft node (broker + controller): its files, its process, its readiness.

Pure helpers (`free_port`, `render_server_properties`, `new_cluster_id`) are unit-tested; the
process functions run `java -cp '<libs>/*' kafka.Kafka` exactly as the Kafka distribution does.
"""

from __future__ import annotations

import base64
import logging
import socket
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.errors import BrokerStartError, StackError
from streams.kafka.stack.jars import require_program
from streams.kafka.stack.processes import pid_alive, reap
from streams.kafka.stack.security import StackSecurity, write_private

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_LOG4J2 = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


@dataclass(frozen=True)
class NodeSpec:
    """Where one KRaft node listens and keeps its files."""

    node_id: int
    broker_port: int
    controller_port: int
    directory: Path

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.broker_port}"

    @property
    def properties_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.directory / "data"

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something listens on the port. SO_REUSEADDR, as the JVM sets it, so that
    connections in TIME_WAIT from a killed broker do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 chars).

    Never one that starts with "-": kafka-storage's argument parser would take it for an
    option (1 id in 64 did; Kafka's own Uuid.randomUuid() skips those too)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def render_server_properties(node: NodeSpec, quorum: Sequence[NodeSpec],
                             security: StackSecurity | None = None) -> str:
    """`server.properties` for a combined broker+controller node on loopback.

    With `security`, the PLAINTEXT listeners give way to SASL and the authorizer is on."""
    voters = ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in quorum)
    replication = min(3, len(quorum))
    settings: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{LOOPBACK}:{node.broker_port},"
        f"CONTROLLER://{LOOPBACK}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{node.broker_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": node.log_dir,
        # Internal topics follow the cluster size so one broker works and three replicate.
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min(2, replication),
        "default.replication.factor": replication,
        "min.insync.replicas": min(2, replication),
        # Tests and demos want a group to form at once, and no topic typo to create a topic.
        "group.initial.rebalance.delay.ms": 0,
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "log.retention.hours": 24,
        "log.segment.bytes": 64 * 1024 * 1024,
        "num.network.threads": 2,
        "num.io.threads": 4,
    }
    if security is not None:
        settings.update(security.server_properties(node.broker_port, node.controller_port,
                                                   LOOPBACK))
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def write_node_files(node: NodeSpec, quorum: Sequence[NodeSpec],
                     security: StackSecurity | None = None) -> None:
    node.directory.mkdir(parents=True, exist_ok=True)
    # A secured node's properties hold the admin's password: owner-only, like its data.
    write_private(node.properties_file, render_server_properties(node, quorum, security))
    (node.directory / "log4j2.properties").write_text(_LOG4J2.format(log_file=node.server_log))


def _java_command(libs_dir: Path, node: NodeSpec, heap: str, main: str) -> list[str]:
    java = require_program("java")
    return [
        java, f"-Xmx{heap}", f"-Xms{min_heap(heap)}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={node.directory}",
        "-cp", f"{libs_dir}/*", main,
    ]


def min_heap(heap: str) -> str:
    """Start small: the initial heap is the max heap or 256m, whichever is smaller."""
    return heap if heap.endswith("m") and int(heap[:-1]) < 256 else "256m"


def format_storage(libs_dir: Path, node: NodeSpec, cluster_id: str, heap: str,
                   security: StackSecurity | None = None) -> None:
    """`kafka-storage format` for one node; a no-op on a node that is already formatted.

    A secured node gets its SCRAM users here: KRaft brokers read them from the metadata log,
    and the first one (the admin) is needed before any client can log in."""
    if (node.log_dir / "meta.properties").is_file():
        return
    command = _java_command(libs_dir, node, heap, "kafka.tools.StorageTool")
    command += ["format", f"--cluster-id={cluster_id}", "-c", str(node.properties_file),
                "--ignore-formatted"]
    scram = security.format_arguments() if security is not None else []
    done = subprocess.run(command + scram, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        for argument in scram[1::2]:  # never echo a (salted) credential back
            output = output.replace(argument, "SCRAM-SHA-512=[**********]")
        output = security.redact(output) if security is not None else output
        raise StackError(f"formatting {node.log_dir} failed:\n{output}")


def start_node(libs_dir: Path, node: NodeSpec, heap: str) -> subprocess.Popen[bytes]:
    """Start the node in its own session (so a Ctrl-C in the caller's terminal spares it)."""
    for port in (node.broker_port, node.controller_port):
        if port_in_use(port):
            raise StackError(f"port {LOOPBACK}:{port} for Kafka node {node.node_id} is taken")
    command = [*_java_command(libs_dir, node, heap, "kafka.Kafka"), str(node.properties_file)]
    console = open(node.directory / "console.log", "ab")  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(command, stdout=console, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        console.close()


def log_tail(node: NodeSpec, lines: int = 25) -> str:
    texts = []
    for path in (node.server_log, node.directory / "console.log"):
        if path.is_file():
            texts.extend(path.read_text(errors="replace").splitlines()[-lines:])
    return "\n".join(texts[-lines:]) or "(the broker wrote no log)"


def check_started(node: NodeSpec, process_pid: int) -> None:
    """Raise `BrokerStartError` with the log tail if the node's process already exited."""
    reap(process_pid)
    if not pid_alive(process_pid):
        raise BrokerStartError(
            f"Kafka node {node.node_id} exited during start-up; last log lines from "
            f"{node.server_log}:\n{log_tail(node)}"
        )
