"""Launcher helpers that need no running broker: ports, properties, state, clear errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.errors import PrerequisiteMissing, StackError
from streams.kafka.stack import broker, jars
from streams.kafka.stack.broker import NodeSpec
from streams.kafka.stack.cluster import LocalCluster


def _parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_free_port_is_bindable_on_loopback() -> None:
    port = broker.free_port()
    assert 1024 < port < 65536
    assert not broker.port_in_use(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert broker.port_in_use(sock.getsockname()[1])


def test_cluster_id_never_starts_with_a_dash() -> None:
    # kafka-storage would read "-..." as an option; 1 in 64 random ids start with "-".
    assert not any(broker.new_cluster_id().startswith("-") for _ in range(5000))


def test_cluster_id_is_22_url_safe_chars() -> None:
    ids = {broker.new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 22 and "=" not in i and "/" not in i and "+" not in i for i in ids)


def test_single_node_properties(tmp_path: Path) -> None:
    node = NodeSpec(1, 19092, 19093, tmp_path)
    props = _parse(broker.render_server_properties(node, [node]))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == str(tmp_path / "data")


def test_three_node_quorum_replicates_internal_topics(tmp_path: Path) -> None:
    nodes = [NodeSpec(i, 19090 + 2 * i, 19091 + 2 * i, tmp_path / str(i)) for i in (1, 2, 3)]
    props = _parse(broker.render_server_properties(nodes[1], nodes))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097")
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"


def test_min_heap_never_exceeds_max() -> None:
    assert broker.min_heap("128m") == "128m"
    assert broker.min_heap("512m") == "256m"
    assert broker.min_heap("2g") == "256m"


def test_missing_program_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PrerequisiteMissing, match="apt-get install openjdk-17"):
        jars.require_program("java")
    with pytest.raises(PrerequisiteMissing, match="apt-get install maven"):
        jars.require_program("mvn")


def test_taken_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"port 127.0.0.1:{taken} is taken"):
            LocalCluster.create(tmp_path, tmp_path / "libs", "4.1.1", broker_port=taken)


def test_state_round_trips_and_rejects_garbage(tmp_path: Path) -> None:
    cluster = LocalCluster.create(tmp_path, tmp_path / "libs", "4.1.1", size=3)
    cluster.nodes[0].pid = 12345
    cluster.save()
    loaded = LocalCluster.load(tmp_path)
    assert loaded is not None
    assert loaded.cluster_id == cluster.cluster_id
    assert [n.spec for n in loaded.nodes] == [n.spec for n in cluster.nodes]
    assert loaded.nodes[0].pid == 12345
    (tmp_path / "stack.json").write_text("{}")
    with pytest.raises(StackError, match="not a stack state file"):
        LocalCluster.load(tmp_path)


def test_only_one_or_three_nodes(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="1 or 3 nodes"):
        LocalCluster.create(tmp_path, tmp_path / "libs", "4.1.1", size=2)


def test_early_exit_reports_log_tail(tmp_path: Path) -> None:
    node = NodeSpec(1, 1, 2, tmp_path)
    node.server_log.write_text("line one\nFATAL boom: storage is not formatted\n")
    with pytest.raises(Exception, match="storage is not formatted"):
        broker.check_started(node, 2**22 + 12345)  # no such PID: it "exited"
