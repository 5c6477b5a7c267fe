"""The layout's rules, checked on every module's imports (docs/architecture.md states them)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_FRAMEWORKS = {"aiokafka", "faust", "mode", "clickhouse_connect", "chdb", "torch",
                 "transformers", "prometheus_client"}
PROMETHEUS_OBJECTS = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum",
                      "CollectorRegistry"}


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (at any depth of its code)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def roots(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("package", ["streams/policy", "streams/protocol", "streams/wire"])
def test_the_pure_packages_import_no_io_framework(package: str) -> None:
    offenders = {rel(p): sorted(roots(imports(p)) & IO_FRAMEWORKS) for p in modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_policy_imports_only_the_standard_library_and_itself() -> None:
    for path in modules("streams/policy"):
        ours = {n for n in imports(path) if n.split(".")[0] in {"streams", "models", "schemas"}}
        assert all(n.startswith("streams.policy") for n in ours), (rel(path), ours)


def test_protocol_and_wire_do_not_reach_into_the_service() -> None:
    service = ("streams.worker", "streams.kafka", "streams.client", "streams.cli",
               "streams.analytics", "streams.autoscale")
    for path in modules("streams/protocol", "streams/wire"):
        reached = sorted(n for n in imports(path) if n.startswith(service))
        assert reached == [], rel(path)


def test_only_the_worker_app_and_the_control_agent_import_faust() -> None:
    users = {rel(p) for p in modules("streams", "models")
             if roots(imports(p)) & {"faust", "mode"}}
    assert users == {"streams/worker/app.py", "streams/control/agent.py"}


def test_the_control_plane_stays_out_of_the_worker_and_the_heavy_frameworks() -> None:
    # The worker hands the agent its hot-reload path; the control plane never reaches back.
    banned = ("streams.worker", "streams.analytics", "streams.autoscale", "streams.cli")
    for path in modules("streams/control"):
        names = imports(path)
        assert not [n for n in names if n.startswith(banned)], rel(path)
        assert not roots(names) & {"torch", "transformers", "clickhouse_connect", "chdb"}, rel(path)
    pure = imports(ROOT / "streams/control/state.py")
    assert not roots(pure) & IO_FRAMEWORKS  # the rules a record must pass are pure


def test_only_one_module_creates_prometheus_objects() -> None:
    creators = set()
    for path in modules("streams", "models"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module == "prometheus_client"
                    and {a.name for a in node.names} & PROMETHEUS_OBJECTS):
                creators.add(rel(path))
    assert creators == {"streams/worker/metrics.py"}


def test_torch_and_transformers_only_under_models() -> None:
    users = {rel(p) for p in modules("streams") if roots(imports(p)) & {"torch", "transformers"}}
    assert users == set()


def test_importing_the_pure_packages_loads_no_io_framework() -> None:
    pure = [".".join(p.relative_to(ROOT).with_suffix("").parts)
            for p in modules("streams/policy", "streams/protocol", "streams/wire")
            if p.name != "__init__.py"]
    code = ("import sys\n" + "".join(f"import {name}\n" for name in pure)
            + f"bad = {sorted(IO_FRAMEWORKS)!r}\n"
            + "loaded = sorted(set(bad) & {m.split('.')[0] for m in sys.modules})\n"
            + "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_package_says_what_it_owns_and_must_not_import() -> None:
    for init in (ROOT / "streams").rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{rel(init)} has no docstring"
    for package in ("wire", "protocol", "policy", "kafka", "analytics", "client", "worker",
                    "tracing", "control"):
        doc = ast.get_docstring(ast.parse((ROOT / "streams" / package / "__init__.py")
                                          .read_text(encoding="utf-8"))) or ""
        assert "Must not import" in doc, package


def test_only_the_tracing_package_imports_opentelemetry() -> None:
    users = {rel(p) for p in modules("streams", "models", "bench")
             if "opentelemetry" in roots(imports(p))}
    assert users <= {"streams/tracing/spans.py", "streams/tracing/setup.py"}, users


def test_tracing_reaches_into_no_other_package() -> None:
    allowed = {"streams.tracing", "streams.clock", "streams.errors"}
    for path in modules("streams/tracing"):
        assert not roots(imports(path)) & IO_FRAMEWORKS, rel(path)
        ours = {n for n in imports(path) if n.split(".")[0] in {"streams", "models", "schemas"}}
        assert all(n.split(".")[0] + "." + n.split(".")[1] in allowed for n in ours), (
            rel(path), ours)


def test_trace_propagation_needs_no_opentelemetry() -> None:
    code = ("import sys\nsys.modules['opentelemetry'] = None\n"
            "import streams.tracing.propagation\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
