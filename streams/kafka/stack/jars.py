"""Resolve the Apache Kafka broker jars with Maven into a git-ignored cache, once."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from streams.errors import PrerequisiteMissing, StackError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]  # streams/kafka/stack/jars.py
DEFAULT_POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
INSTALL_HINTS = {
    "java": "Kafka 4 needs a Java 17+ runtime: `apt-get install openjdk-17-jre-headless`",
    "mvn": "the broker jars are resolved with Maven: `apt-get install maven`",
}
# A jar every resolved cache must hold; its absence means an interrupted resolve.
_MARKER_PREFIX = "kafka_2.13-"


def require_program(name: str) -> str:
    """Path of `name` on PATH, or a `PrerequisiteMissing` saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise PrerequisiteMissing(f"`{name}` is not on PATH; {INSTALL_HINTS.get(name, '')}")
    return found


def default_libs_dir(kafka_version: str) -> Path:
    return PROJECT_ROOT / ".cache" / "kafka" / kafka_version / "libs"


def is_resolved(libs_dir: Path, kafka_version: str) -> bool:
    return (libs_dir / f"{_MARKER_PREFIX}{kafka_version}.jar").is_file()


def resolve_kafka_jars(libs_dir: Path, kafka_version: str, pom: Path = DEFAULT_POM) -> Path:
    """Copy the pinned broker runtime into `libs_dir` unless it is already there."""
    if is_resolved(libs_dir, kafka_version):
        return libs_dir
    if not pom.is_file():
        raise StackError(f"Kafka pom not found at {pom}; set STREAMSERVE_KAFKA_POM")
    mvn = require_program("mvn")
    partial = libs_dir.with_name(libs_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"resolving Apache Kafka {kafka_version} jars with Maven into {libs_dir} ...",
          file=sys.stderr, flush=True)  # a progress line: the first resolve takes a while
    command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={partial}", f"-Dkafka.version={kafka_version}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise StackError(
            f"Maven could not resolve the Kafka jars (exit {done.returncode}):\n{tail}")
    if not is_resolved(partial, kafka_version):
        raise StackError(
            f"Maven finished but {partial} holds no {_MARKER_PREFIX}{kafka_version}.jar")
    # Rename last so an interrupted download never looks like a complete cache.
    shutil.rmtree(libs_dir, ignore_errors=True)
    libs_dir.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(libs_dir)
    return libs_dir
