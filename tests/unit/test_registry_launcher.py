"""The registry launcher's pure parts: the pin, the Java it picks, the command it runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streams.errors import PrerequisiteMissing, StackError
from streams.kafka.stack.registry_install import (
    APICURIO_VERSION,
    REGISTRY_POM,
    find_java,
    java_major,
)
from streams.kafka.stack.registry_server import RegistryServer

POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _jdk(root: Path, name: str, version: str | None) -> Path:
    java = root / name / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    if version is not None:
        (root / name / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    return java


def test_pom_pins_the_launchers_version() -> None:
    pom = ET.parse(REGISTRY_POM).getroot()
    assert pom.findtext("m:properties/m:apicurio.version", namespaces=POM_NS) == APICURIO_VERSION


def test_java_major_reads_the_release_file(tmp_path: Path) -> None:
    assert java_major(_jdk(tmp_path, "jdk25", "25.0.3")) == 25
    assert java_major(_jdk(tmp_path, "jdk8", "1.8.0_292")) == 8
    assert java_major(_jdk(tmp_path, "bare", None)) is None


def test_find_java_takes_the_newest_that_is_new_enough(tmp_path: Path) -> None:
    old = _jdk(tmp_path, "jdk17", "17.0.15")
    new = _jdk(tmp_path, "jdk25", "25.0.3")
    mid = _jdk(tmp_path, "jdk21", "21.0.7")
    assert find_java(21, [old, mid, new]) == new
    assert find_java(21, [old, mid]) == mid
    with pytest.raises(PrerequisiteMissing, match=r"needs Java 21\+.*jdk17/bin/java \(Java 17\)"):
        find_java(21, [old])


def test_command_binds_loopback_only_and_keeps_files_in_its_directory(tmp_path: Path) -> None:
    server = RegistryServer.create(tmp_path / "reg")
    assert server.port != server.management_port
    command = server.command(Path("/usr/bin/java"))
    database = tmp_path / "reg" / "db" / "registry"
    for option in (f"-Dquarkus.http.port={server.port}", "-Dquarkus.http.host=127.0.0.1",
                   "-Dquarkus.management.host=127.0.0.1",
                   f"-Dquarkus.management.port={server.management_port}",
                   f"-Djava.io.tmpdir={tmp_path / 'reg' / 'tmp'}",
                   "-Dapicurio.rules.global.compatibility=BACKWARD",
                   f"-Dapicurio.datasource.url=jdbc:h2:file:{database}"):
        assert option in command
    assert command[-1].endswith("quarkus-run.jar")
    in_memory = RegistryServer.create(tmp_path / "mem", in_memory=True).command(Path("java"))
    assert not any("datasource" in part for part in in_memory)
    assert server.url == f"http://127.0.0.1:{server.port}/apis/ccompat/v7"


def test_state_round_trip_and_a_broken_state_file(tmp_path: Path) -> None:
    server = RegistryServer.create(tmp_path, in_memory=True)
    server.pid = 12345
    server.save()
    assert RegistryServer.load(tmp_path) == server
    (tmp_path / "registry.json").write_text("{}")
    with pytest.raises(StackError, match="not a registry state file"):
        RegistryServer.load(tmp_path)
    assert RegistryServer.load(tmp_path / "none") is None
