"""A local Confluent-compatible schema registry (Apicurio Registry) on loopback.

`start` installs the pinned registry if needed, starts it in its own session with its files under
`directory` (log, temp files, and its H2 database unless `in_memory`), and waits until Confluent's
`GET /subjects` answers; `stop` ends it by the PID it recorded. Both HTTP interfaces (the API
and Quarkus's management port, which would otherwise take 0.0.0.0:9000) are bound to 127.0.0.1
on free ports. The global compatibility level is BACKWARD, Confluent's default (Apicurio's
own default is none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.errors import StackError
from streams.kafka.stack.broker import LOOPBACK, free_port, port_in_use
from streams.kafka.stack.processes import pid_alive, stop_pid
from streams.kafka.stack.registry_install import (
    APICURIO_VERSION,
    RUNNER,
    default_install_dir,
    find_java,
    install_registry,
)

CONFLUENT_API = "/apis/ccompat/v7"  # where Apicurio serves Confluent's Schema Registry API
STATE_FILE = "registry.json"
LOG_FILE = "registry.log"


@dataclass
class RegistryServer:
    directory: Path
    port: int
    management_port: int
    install_dir: Path
    version: str = APICURIO_VERSION
    heap: str = "256m"
    in_memory: bool = False  # tests: nothing kept; the stack: ids survive a restart
    compatibility: str = "BACKWARD"
    pid: int | None = None

    @classmethod
    def create(cls, directory: Path, *, port: int | None = None, in_memory: bool = False,
               version: str = APICURIO_VERSION, install_dir: Path | None = None,
               heap: str = "256m") -> RegistryServer:
        """A registry layout on free loopback ports (or `port` for the API)."""
        if port is not None and port_in_use(port):
            raise StackError(f"port {LOOPBACK}:{port} for the schema registry is taken")
        return cls(directory, port or free_port(), free_port(),
                   install_dir or default_install_dir(version), version, heap, in_memory)

    @classmethod
    def load(cls, directory: Path) -> RegistryServer | None:
        path = directory / STATE_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text())
            raw["directory"], raw["install_dir"] = Path(raw["directory"]), Path(raw["install_dir"])
            return cls(**raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise StackError(f"{path} is not a registry state file ({exc}); remove it") from exc

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {**asdict(self), "directory": str(self.directory),
                 "install_dir": str(self.install_dir)}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    @property
    def url(self) -> str:
        """What STREAMSERVE_SCHEMA_REGISTRY_URL and Confluent's clients are given."""
        return f"http://{LOOPBACK}:{self.port}{CONFLUENT_API}"

    @property
    def running(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    def command(self, java: Path) -> list[str]:
        scratch = self.directory / "tmp"
        options = {
            "quarkus.http.host": LOOPBACK, "quarkus.http.port": self.port,
            "quarkus.management.host": LOOPBACK, "quarkus.management.port": self.management_port,
            "java.io.tmpdir": scratch, "apicurio.storage.snapshot.location": scratch,
            "apicurio.import.work-dir": scratch,
            "apicurio.rules.global.compatibility": self.compatibility,
        }
        if not self.in_memory:
            database = self.directory / "db" / "registry"
            options["apicurio.datasource.url"] = f"jdbc:h2:file:{database}"
        # C1 only: the registry answers a few calls; a quick start matters more than peak speed.
        return [str(java), f"-Xmx{self.heap}", "-XX:TieredStopAtLevel=1",
                *(f"-D{key}={value}" for key, value in options.items()),
                "-jar", str(self.install_dir / RUNNER)]

    def start(self, timeout_s: float = 60.0, java: Path | None = None) -> float:
        """Start the registry unless it runs; wait until it answers. Returns seconds taken."""
        started_at = time.monotonic()
        if self.running:
            self.wait_ready(timeout_s)
            return time.monotonic() - started_at
        install_registry(self.install_dir, self.version)
        for port in (self.port, self.management_port):
            if port_in_use(port):
                raise StackError(f"port {LOOPBACK}:{port} for the schema registry is taken")
        (self.directory / "tmp").mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.pid = subprocess.Popen(
                self.command(java or find_java()), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.directory, start_new_session=True).pid
        self.save()
        try:
            self.wait_ready(timeout_s)
        except StackError:
            self.stop()
            raise
        return time.monotonic() - started_at

    def wait_ready(self, timeout_s: float) -> None:
        """Poll `GET /subjects` until it answers 200 (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.pid is None or not pid_alive(self.pid):
                raise StackError("the schema registry exited during start-up; last lines of "
                                 f"{self.log_file}:\n{self.log_tail()}")
            if _answers(self.url + "/subjects"):
                return
            if time.monotonic() > deadline:
                raise StackError(f"the schema registry did not answer at {self.url} within "
                                 f"{timeout_s:.0f}s; last lines of {self.log_file}:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.2)

    def stop(self, purge: bool = False) -> int | None:
        """Stop the process we started (by its PID); `purge` also deletes its files."""
        stopped = self.pid if self.running else None
        if stopped is not None:
            stop_pid(stopped, timeout_s=20.0)
        self.pid = None
        if purge:
            shutil.rmtree(self.directory, ignore_errors=True)
        elif self.directory.is_dir():
            self.save()
        return stopped

    def log_tail(self, lines: int = 25) -> str:
        if not self.log_file.is_file():
            return "(the registry wrote no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
