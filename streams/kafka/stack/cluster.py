"""A local Apache Kafka cluster (1 or 3 KRaft nodes) with its state kept in `stack.json`.

`up` starts (or restarts, keeping data and ports) the nodes and waits for a metadata answer
listing all of them; `down` stops them by the PIDs it recorded; `status` says what runs where.
The same class backs `streamserve stack ...` and the pytest fixtures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.client import AIOKafkaClient

from streams.errors import BrokerStartError, StackError
from streams.kafka.stack import broker, processes
from streams.kafka.stack.broker import NodeSpec
from streams.kafka.stack.jars import resolve_kafka_jars
from streams.kafka.stack.security import StackSecurity, recorded_security

logger = logging.getLogger(__name__)

STATE_FILE = "stack.json"


@dataclass
class NodeState:
    spec: NodeSpec
    pid: int | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None and processes.pid_alive(self.pid)


@dataclass
class LocalCluster:
    """Nodes under `directory`; `libs_dir` holds the resolved broker jars."""

    directory: Path
    libs_dir: Path
    kafka_version: str
    heap: str = "512m"
    cluster_id: str = field(default_factory=broker.new_cluster_id)
    nodes: list[NodeState] = field(default_factory=list)
    security: StackSecurity | None = None  # SASL/SCRAM + ACLs; None: PLAINTEXT, no authorizer

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, directory: Path, libs_dir: Path, kafka_version: str, size: int = 1,
               heap: str = "512m", broker_port: int | None = None,
               security: StackSecurity | None = None) -> LocalCluster:
        """A new cluster layout with free loopback ports (or `broker_port` for node 1)."""
        if size not in (1, 3):
            raise StackError(f"a local cluster has 1 or 3 nodes, not {size}")
        if broker_port is not None and broker.port_in_use(broker_port):
            raise StackError(f"port {broker.LOOPBACK}:{broker_port} is taken; "
                             "choose another with --port or stop what listens there")
        specs = []
        for node_id in range(1, size + 1):
            port = broker_port if (node_id == 1 and broker_port) else broker.free_port()
            specs.append(NodeSpec(node_id, port, broker.free_port(), directory / f"node-{node_id}"))
        return cls(directory, libs_dir, kafka_version, heap,
                   nodes=[NodeState(spec) for spec in specs], security=security)

    @classmethod
    def load(cls, directory: Path) -> LocalCluster | None:
        path = directory / STATE_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            nodes = [NodeState(NodeSpec(n["node_id"], n["broker_port"], n["controller_port"],
                                        Path(n["directory"])), n.get("pid"))
                     for n in raw["nodes"]]
            security = recorded_security(raw.get("security"), nodes[0].spec.properties_file)
            return cls(Path(raw["directory"]), Path(raw["libs_dir"]), raw["kafka_version"],
                       raw["heap"], raw["cluster_id"], nodes, security)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StackError(f"{path} is not a stack state file ({exc}); "
                             f"remove {directory} to start afresh") from exc

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {
            "directory": str(self.directory), "libs_dir": str(self.libs_dir),
            "kafka_version": self.kafka_version, "heap": self.heap, "cluster_id": self.cluster_id,
            "nodes": [{**asdict(n.spec), "directory": str(n.spec.directory), "pid": n.pid}
                      for n in self.nodes],
            "security": self.security.describe() if self.security is not None else None,
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    # ---- lifecycle ----------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.spec.bootstrap for n in self.nodes)

    def up(self, timeout_s: float = 60.0) -> float:
        """Start every node that is not running; wait until all answer. Returns seconds taken."""
        started_at = time.monotonic()
        resolve_kafka_jars(self.libs_dir, self.kafka_version)
        specs = [n.spec for n in self.nodes]
        for node in self.nodes:
            if node.running:
                continue
            broker.write_node_files(node.spec, specs, self.security)
            broker.format_storage(self.libs_dir, node.spec, self.cluster_id, self.heap,
                                  self.security)
        for node in self.nodes:
            if not node.running:
                node.pid = broker.start_node(self.libs_dir, node.spec, self.heap).pid
        self.save()
        try:
            self.wait_ready(timeout_s)
        except BrokerStartError:
            self.down()
            raise
        return time.monotonic() - started_at

    def wait_ready(self, timeout_s: float) -> None:
        """Poll metadata until every node is listed as a broker (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        expected = {n.spec.node_id for n in self.nodes if n.running or n.pid is not None}
        while True:
            for node in self.nodes:
                if node.pid is not None:
                    broker.check_started(node.spec, node.pid)
            # Ask for metadata only once every listener accepts connections: aiokafka logs
            # an error for each refused connection, which would bury the real failures.
            listening = all(_accepts(n.spec) for n in self.nodes if n.pid is not None)
            seen = (asyncio.run(_broker_ids(self.bootstrap_servers, self.client_options()))
                    if listening else set())
            if expected <= seen:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- node {n.spec.node_id}:\n{broker.log_tail(n.spec)}"
                                  for n in self.nodes)
                tails = self.security.redact(tails) if self.security is not None else tails
                raise BrokerStartError(f"Kafka did not answer with brokers {sorted(expected)} "
                                       f"within {timeout_s:.0f}s (saw {sorted(seen)}):\n{tails}")
            time.sleep(0.3)

    def kill_node(self, node_id: int, sig: int) -> None:
        """Signal one node (tests use SIGKILL to simulate a crash)."""
        node = self.nodes[node_id - 1]
        if node.pid is not None:
            processes.stop_pid(node.pid, timeout_s=20.0, sig=sig)
            node.pid = None
            self.save()

    def restart_node(self, node_id: int, timeout_s: float = 60.0) -> None:
        node = self.nodes[node_id - 1]
        node.pid = broker.start_node(self.libs_dir, node.spec, self.heap).pid
        self.save()
        self.wait_ready(timeout_s)

    def down(self, purge: bool = False) -> list[int]:
        """Stop every node by the PID we recorded; `purge` also deletes the data. Returns PIDs.

        With `purge` the nodes are SIGKILLed: their data is deleted anyway, and a controlled
        shutdown of the last nodes of a quorum can wait long for voters that are gone.
        """
        stopped = []
        sig = signal.SIGKILL if purge else signal.SIGTERM
        for node in self.nodes:
            if node.pid is not None and node.running:
                processes.stop_pid(node.pid, sig=sig)
                stopped.append(node.pid)
            node.pid = None
        if purge:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            self.save()
        return stopped

    def client_options(self) -> dict[str, Any]:
        """aiokafka keyword arguments of a client with every right (the admin when secured)."""
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.security is not None:
            options.update(self.security.client_options())
        return options

    def status(self) -> list[dict[str, Any]]:
        return [{"node_id": n.spec.node_id, "pid": n.pid, "running": n.running,
                 "bootstrap": n.spec.bootstrap, "controller_port": n.spec.controller_port,
                 "directory": str(n.spec.directory)} for n in self.nodes]


def _accepts(spec: NodeSpec) -> bool:
    try:
        with socket.create_connection((broker.LOOPBACK, spec.broker_port), timeout=1):
            return True
    except OSError:
        return False


async def _broker_ids(bootstrap_servers: str, options: dict[str, Any]) -> set[int]:
    """Node ids in a metadata answer, or the empty set while nobody answers yet."""
    client = AIOKafkaClient(**{**options, "bootstrap_servers": bootstrap_servers},
                            request_timeout_ms=3000, metadata_max_age_ms=1000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout=5)
        ok = await asyncio.wait_for(client.force_metadata_update(), timeout=5)
        return {b.nodeId for b in client.cluster.brokers()} if ok else set()
    except Exception:  # noqa: BLE001 - any failure here just means "not ready yet"
        return set()
    finally:
        await client.close()
