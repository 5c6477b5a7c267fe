"""Resolve the Apache Kafka broker jars with Maven into a git-ignored cache, once."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
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
    return fill_with_maven(
        libs_dir, pom,
        lambda partial: ["dependency:copy-dependencies", f"-DoutputDirectory={partial}",
                         f"-Dkafka.version={kafka_version}"],
        lambda directory: is_resolved(directory, kafka_version),
        f"the Apache Kafka {kafka_version} jars", pom_hint="; set STREAMSERVE_KAFKA_POM")


def fill_with_maven(target: Path, pom: Path, goal_arguments: Callable[[Path], Sequence[str]],
                    is_complete: Callable[[Path], bool], what: str, pom_hint: str = "") -> Path:
    """Run `mvn -f pom <goal_arguments(partial)>` unless `target` is complete already.

    Maven writes into `<target>.partial`, renamed to `target` only once `is_complete`, so an
    interrupted download never looks like a complete cache. `what` names the content."""
    if is_complete(target):
        return target
    if not pom.is_file():
        raise StackError(f"the pom for {what} is not at {pom}{pom_hint}")
    mvn = require_program("mvn")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"fetching {what} with Maven into {target} ...",
          file=sys.stderr, flush=True)  # a progress line: the first fetch takes a while
    done = subprocess.run([mvn, "-q", "-B", "-f", str(pom), *goal_arguments(partial)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise StackError(f"Maven could not fetch {what} (exit {done.returncode}):\n{tail}")
    if not is_complete(partial):
        raise StackError(f"Maven finished but {partial} does not hold {what}")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(target)
    return target
