"""deploy/prereqs.sh: the one check of the system programs behind `make test`, `make demo`
and `.ci/run`. Its dry run must name every program the test suite and the service start."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "prereqs.sh"
# Where programs are started from while the tests run: the tests and their harnesses, and the
# service code they drive (the local Kafka launcher starts java and mvn).
SCANNED = ("tests", "streams", "models")
LAUNCHERS = {"run", "Popen", "check_output", "check_call", "call"}
# Programs whose tests skip without them and that come with their own installer, not apt.
OPTIONAL = {"helm": "deploy/helm/check.sh installs a pinned helm into .cache/tools"}
# Programs nothing needs to install: part of the base system, or used only where they exist.
NOT_INSTALLED = {
    "bash": "part of every Debian/Ubuntu base system (prereqs.sh itself runs in it)",
    "nvidia-smi": "comes with the NVIDIA driver; `up --gpus` falls back when it is absent",
}
LOOKUPS = {"which", "require_program"}


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def programs_started() -> dict[str, Path]:
    """Program names passed to shutil.which/require_program, or first in a literal argv list
    of subprocess.run/Popen/..., in every Python file under SCANNED."""
    found: dict[str, Path] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue  # this file runs the checker itself (bash, setpriv)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                first = node.args[0]
                if name in LOOKUPS:
                    program = _literal(first)
                elif name in LAUNCHERS and isinstance(first, ast.List) and first.elts:
                    program = _literal(first.elts[0])
                else:
                    continue
                if program is not None:
                    found.setdefault(program, path.relative_to(ROOT))
    return found


def dry_run(*targets: str, env: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", *targets], capture_output=True,
                          text=True, timeout=60, env=env, check=True)
    rows = [line.split(None, 2) for line in done.stdout.splitlines()]
    listed = {row[0]: row[2] for row in rows if len(row) == 3}
    return listed, done.stdout


def test_dry_run_of_make_test_names_every_program_the_tests_start() -> None:
    started = programs_started()
    # The scan itself works: these are started by the suite today.
    assert {"java", "mvn", "prometheus", "promtool"} <= set(started)
    listed, output = dry_run("test")
    for name in set(OPTIONAL) & set(started):  # optional only if its tests really skip
        assert "skipif(" in (ROOT / started[name]).read_text(), (name, OPTIONAL[name])
    missing = {name: str(where) for name, where in started.items()
               if name not in listed and name not in OPTIONAL and name not in NOT_INSTALLED}
    assert not missing, f"started by {missing}, not in the test prerequisites:\n{output}"


def test_dry_run_of_ci_also_names_the_makefile_programs() -> None:
    recipes = re.findall(r"^\t(?:@)?([a-z][\w.-]*)\s", (ROOT / "Makefile").read_text(), re.M)
    external = {word for word in recipes if word in {"docker-compose", "java", "mvn"}}
    assert "docker-compose" in external
    listed, _ = dry_run("ci")
    assert external <= set(listed)
    assert {"make", "java", "mvn", "prometheus", "promtool", "docker-compose"} <= set(listed)


def _path_with(tmp_path: Path, programs: dict[str, str | None]) -> dict[str, str]:
    """An environment whose PATH holds only `programs` (name -> real program, or a script)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target in programs.items():
        real = shutil.which(target or name)
        if real is None:
            pytest.skip(f"{target or name} is not installed here")
        (bin_dir / name).symlink_to(real)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path), "VENV": str(tmp_path / "no-venv"),
            "PYTHON": "python3"}


def test_a_missing_program_is_named_with_the_install_command(tmp_path: Path) -> None:
    env = _path_with(tmp_path, {"bash": None, "java": None, "mvn": None, "make": None})
    listed, output = dry_run("test", env=env)
    assert listed["prometheus"].startswith("MISSING")
    assert listed["promtool"].startswith("MISSING")
    assert listed["java"].startswith("ok")
    # One package for both programs, in the one command that would run.
    assert re.search(r"^would run: apt-get update && apt-get install -y --no-install-recommends "
                     r"(\S+ )*prometheus$", output, re.M), output


def test_java_older_than_17_counts_as_missing(tmp_path: Path) -> None:
    fake = tmp_path / "java11"
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.21" 2023-10-17\' >&2\n')
    fake.chmod(0o755)
    env = _path_with(tmp_path, {"bash": None})
    (tmp_path / "bin" / "java").symlink_to(fake)
    listed, output = dry_run("demo", env=env)
    assert listed["java"].startswith("MISSING (Java 11 is too old")
    assert "openjdk-17-jre-headless" in output


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run make as an unprivileged user")
def test_make_test_stops_before_any_test_when_it_cannot_install() -> None:
    """Not root, prometheus missing: `make test` prints the command and runs nothing."""
    base = Path(tempfile.mkdtemp(prefix="prereqs-"))  # pytest's tmp_path is private to root
    try:
        base.chmod(0o755)
        env = _path_with(base, {"bash": None, "make": None, "java": None, "mvn": None,
                                "cat": None, "sha256sum": None, "cut": None})
        done = subprocess.run(
            [str(shutil.which("setpriv")), "--reuid=65534", "--regid=65534", "--clear-groups",
             "make", "-C", str(ROOT), "test", "VENV=/nonexistent-venv", "PYTHON=python3"],
            capture_output=True, text=True, timeout=60, env=env)
    finally:
        shutil.rmtree(base)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "missing: python3-venv prometheus promtool" in output
    assert "Run: sudo apt-get update && sudo apt-get install -y --no-install-recommends " \
           "python3-venv prometheus" in output
    assert "pytest" not in output and "pip install" not in output
