"""One Apache Kafka version everywhere it is pinned: the launcher's pom, the Settings default,
the integration tests' broker and compose.yaml's image (so Docker users run what was tested)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from streams.config import Settings
from tests.integration.conftest import KAFKA_VERSION

ROOT = Path(__file__).resolve().parents[2]
POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_every_pin_names_the_same_kafka_release() -> None:
    pom = ET.parse(ROOT / "deploy" / "kafka" / "pom.xml").getroot()
    pinned = pom.findtext("m:properties/m:kafka.version", namespaces=POM_NS)
    assert pinned is not None and re.fullmatch(r"4\.\d+\.\d+", pinned)
    assert pom.findtext("m:version", namespaces=POM_NS) == pinned
    assert Settings.model_fields["kafka_version"].default == pinned
    assert pinned == KAFKA_VERSION
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{pinned}"
    assert pinned in (ROOT / "docs" / "kafka-versions.md").read_text()
