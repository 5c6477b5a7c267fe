"""deploy/helm/streamserve rendered by the real `helm template`: what its values change, what it
refuses, and that deploy/k8s is its current rendering. Needs helm: deploy/helm/check.sh installs
the pinned build into .cache/tools/bin (found there, or on PATH)."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.registry import load_registry
from streams.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamserve"
K8S_VALUES = ROOT / "deploy" / "helm" / "k8s-values.yaml"
PINNED_HELM = ROOT / ".cache" / "tools" / "bin" / "helm"
HELM = str(PINNED_HELM) if PINNED_HELM.is_file() else shutil.which("helm")
AUTOSCALER_KINDS = {"ScaledObject", "HorizontalPodAutoscaler"}

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not installed (deploy/helm/check.sh)")


def helm_template(*sets: str, values: Path | None = K8S_VALUES,
                  chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    command = [str(HELM), "template", "streamserve", str(chart)]
    command += ["-f", str(values)] if values else []
    for item in sets:  # "str:key=value" is --set-string, "file:key=path" --set-file
        flag = "--set"
        for prefix, option in (("str:", "--set-string"), ("file:", "--set-file")):
            if item.startswith(prefix):
                flag, item = option, item.removeprefix(prefix)
        command += [flag, item]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def render(*sets: str, values: Path | None = K8S_VALUES,
           chart: Path = CHART) -> list[dict[str, Any]]:
    done = helm_template(*sets, values=values, chart=chart)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def refused(*sets: str) -> str:
    done = helm_template(*sets)
    assert done.returncode != 0, f"the chart accepted {sets}"
    return done.stderr


def kinds(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def worker(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = kinds(docs, "Deployment")
    return deployment


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = worker(docs)["spec"]["template"]["spec"]["containers"][0]
    return found


def settings_of(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a pod of this rendering would build (Secret values: any string)."""
    config = next(d for d in kinds(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    for var in container(docs).get("env", []):
        monkeypatch.setenv(var["name"], "worker-0" if "fieldRef" in var["valueFrom"] else "x")
    return Settings()


def test_committed_manifests_are_the_charts_rendering(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(str(HELM)).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([str(ROOT / "deploy" / "helm" / "render-k8s.sh"), str(tmp_path)], env=env,
                   check=True, timeout=120, capture_output=True)
    committed = ROOT / "deploy" / "k8s"
    names = sorted(p.name for p in committed.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    _, differ, errors = filecmp.cmpfiles(committed, tmp_path, names, shallow=False)
    assert differ == [] and errors == [], "run deploy/helm/render-k8s.sh and commit deploy/k8s"


@pytest.mark.parametrize(("mode", "kind"), [("keda", "ScaledObject"),
                                            ("keda-cost", "ScaledObject"),
                                            ("hpa", "HorizontalPodAutoscaler")])
def test_autoscaled_workers_use_dynamic_membership(
        mode: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(f"autoscaling.mode={mode}")
    (scaler,) = [d for d in docs if d["kind"] in AUTOSCALER_KINDS]
    assert scaler["kind"] == kind
    assert scaler["spec"]["scaleTargetRef"]["name"] == worker(docs)["metadata"]["name"]
    assert "replicas" not in worker(docs)["spec"]  # the autoscaler's, not helm upgrade's
    settings = settings_of(docs, monkeypatch)
    assert settings.worker_id is None and settings.static_membership is False


def test_fixed_replicas_may_use_static_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("autoscaling.mode=none", "replicaCount=3", "worker.staticMembership=true")
    assert not [d for d in docs if d["kind"] in AUTOSCALER_KINDS]
    assert worker(docs)["spec"]["replicas"] == 3
    (worker_id,) = [v for v in container(docs)["env"] if v["name"] == "STREAMSERVE_WORKER_ID"]
    assert worker_id["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    settings = settings_of(docs, monkeypatch)
    assert settings.worker_id == "worker-0" and settings.static_membership is True


@pytest.mark.parametrize(("sets", "reason"), [
    (("worker.staticMembership=true",), "static member does not leave the group"),
    (("autoscaling.maxReplicas=13",), "exceeds topics.partitions 12"),
    (("kafka.saslMechanism=",), "needs kafka.saslMechanism"),
    (("secret.create=true",), "secret.kafkaSaslUsername is required"),
    (("worker.extraConfig.KAFKA_HEAP=1g",), "only STREAMSERVE_* settings"),
    (("autoscaling.mode=vpa",), "autoscaling/mode"),
])
def test_the_chart_refuses_what_the_workers_cannot_honour(sets: tuple[str, ...],
                                                           reason: str) -> None:
    assert reason in refused(*sets)


def test_topics_are_created_before_the_worker_starts() -> None:
    docs = render()
    (init,) = worker(docs)["spec"]["template"]["spec"]["initContainers"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert init["args"] == compose["services"]["topic-init"]["command"] == ["topics", "create"]
    assert init["image"] == container(docs)["image"]
    assert (init["envFrom"], init["env"]) == (container(docs)["envFrom"], container(docs)["env"])
    managed_elsewhere = worker(render("topics.createOnStart=false"))
    assert "initContainers" not in managed_elsewhere["spec"]["template"]["spec"]


def test_passwords_are_references_never_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert all(not value for key, value in values["secret"].items()
               if key not in {"name", "create", "keys"})
    docs = render()
    assert not kinds(docs, "Secret")
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in container(docs)["env"]}
    assert set(refs) == {"STREAMSERVE_KAFKA_SASL_USERNAME", "STREAMSERVE_KAFKA_SASL_PASSWORD",
                         "STREAMSERVE_CLICKHOUSE_PASSWORD"}
    created = render("secret.create=true", "str:secret.kafkaSaslUsername=svc",
                     "str:secret.kafkaSaslPassword=pw1", "str:secret.clickhousePassword=pw2")
    (secret,) = kinds(created, "Secret")
    assert secret["stringData"] == {ref["key"]: value for ref, value in zip(
        refs.values(), ["svc", "pw1", "pw2"], strict=True)}
    assert all(ref["name"] == secret["metadata"]["name"] for ref in refs.values())
    # Plain Kafka and embedded chDB need no Secret at all.
    assert "env" not in container(render(values=None))


def test_gpu_value_asks_for_one_gpu_and_a_gpu_node() -> None:
    assert "nvidia.com/gpu" not in container(render())["resources"]["limits"]
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    docs = render("gpu.enabled=true", "str:nodeSelector.gpu=h200",
                  *(f"tolerations[0].{key}={value}" for key, value in toleration.items()))
    limits = container(docs)["resources"]["limits"]
    assert limits == {"nvidia.com/gpu": 1, "memory": "4Gi"}
    pod = worker(docs)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "h200"} and pod["tolerations"] == [toleration]


def test_model_registry_value_is_the_file_the_worker_reads(tmp_path: Path) -> None:
    shipped = (ROOT / "models" / "registry.toml").read_text()
    gpu, swapped = re.subn(r'^device = "[^"]*"$', 'device = "cuda"', shipped, flags=re.M)
    assert swapped >= 1, "the shipped registry names no device line to swap"
    (tmp_path / "gpu.toml").write_text(gpu)
    docs = render(f"file:worker.modelRegistry={tmp_path / 'gpu.toml'}")
    config, models = sorted(kinds(docs, "ConfigMap"), key=lambda d: d["metadata"]["name"])
    path = Path(config["data"]["STREAMSERVE_MODEL_REGISTRY"])
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == "models"]
    assert path.parent == Path(mount["mountPath"])
    (tmp_path / path.name).write_text(models["data"][path.name])
    assert {spec.device for spec in load_registry(tmp_path / path.name)} == {"cuda"}


def test_private_ca_reaches_the_workers_and_keda() -> None:
    docs = render("kafka.caSecret.name=kafka-ca")
    cafile = Path(kinds(docs, "ConfigMap")[0]["data"]["STREAMSERVE_KAFKA_SSL_CAFILE"])
    (mount,) = [m for m in container(docs)["volumeMounts"] if m["name"] == "kafka-ca"]
    assert cafile.parent == Path(mount["mountPath"])
    (auth,) = kinds(docs, "TriggerAuthentication")
    assert {"parameter": "ca", "name": "kafka-ca", "key": cafile.name} in auth["spec"][
        "secretTargetRef"]


def test_install_notes_name_what_the_pods_wait_for(tmp_path: Path) -> None:
    # helm renders NOTES.txt only against a cluster: render it here as a ConfigMap's value.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "notes.txt") . | nindent 4 }}\n')

    def notes(*sets: str, values: Path | None = K8S_VALUES) -> str:
        (found,) = [d for d in render(*sets, values=values, chart=chart)
                    if d["metadata"]["name"] == "notes"]
        text: str = found["data"]["notes"]
        return text

    assert ("Secret streamserve-secrets holds the keys STREAMSERVE_KAFKA_SASL_USERNAME, "
            "STREAMSERVE_KAFKA_SASL_PASSWORD, STREAMSERVE_CLICKHOUSE_PASSWORD") in notes()
    assert "scaled by keda (1..12 replicas)" in notes()
    plain = notes("autoscaling.mode=none", "topics.createOnStart=false", values=None)
    assert "Secret" not in plain and "1 replica(s)" in plain and "topics must exist" in plain


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert container(render())["image"].endswith(f":{project['version']}")
