"""deploy/k8s: the manifests parse and agree with the Dockerfile, Settings and each other."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import Settings
from streams.metrics import Timings, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def docs(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def one(name: str, kind: str) -> dict[str, Any]:
    found = [doc for doc in docs(name) if doc["kind"] == kind]
    assert len(found) == 1, f"{name}: expected one {kind}"
    return found[0]


def config() -> dict[str, str]:
    return dict(one("configmap.yaml", "ConfigMap")["data"])


def secret() -> dict[str, str]:
    return dict(one("secret.yaml", "Secret")["stringData"])


def test_every_manifest_parses_and_names_its_kind() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {f.name for f in files} >= {"configmap.yaml", "secret.yaml", "deployment.yaml",
                                       "service.yaml", "keda-scaledobject.yaml",
                                       "hpa-external.yaml", "kustomization.yaml"}
    for path in files:
        for doc in docs(path.name):
            assert doc["apiVersion"] and doc["kind"], path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path
    resources = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert all((K8S / name).exists() for name in resources)
    assert "hpa-external.yaml" not in resources  # one autoscaler per Deployment


def test_environment_keys_are_settings_fields_and_validate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**config(), **secret()}
    for key, value in env.items():
        assert key.startswith("STREAMSERVE_")
        assert key.removeprefix("STREAMSERVE_").lower() in Settings.model_fields, key
        monkeypatch.setenv(key, value)
    settings = Settings()  # the pod's settings: SASL with credentials, a ClickHouse server
    assert settings.kafka_sasl_password is not None and settings.clickhouse_url
    assert settings.worker_id is None  # dynamic membership: scale-down leaves the group at once
    assert set(secret()) == {"STREAMSERVE_KAFKA_SASL_USERNAME",
                             "STREAMSERVE_KAFKA_SASL_PASSWORD", "STREAMSERVE_CLICKHOUSE_PASSWORD"}


def test_deployment_matches_the_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["streamserve"]' in dockerfile and 'CMD ["worker"]' in dockerfile
    exposed = int(re.search(r"^EXPOSE (\d+)", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    pod = one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["worker"] and "command" not in container
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"web": exposed} and int(config()["STREAMSERVE_WEB_PORT"]) == exposed
    assert config()["STREAMSERVE_WEB_HOST"] == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "web"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "web"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert pod["terminationGracePeriodSeconds"] >= 60
    assert "lifecycle" not in container  # SIGTERM drains: no preStop hook
    refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
    assert refs == ["streamserve-config", "streamserve-secrets"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config()["STREAMSERVE_DATA_DIR"] in mounts


def test_service_selects_the_worker_pods() -> None:
    deployment = one("deployment.yaml", "Deployment")
    service = one("service.yaml", "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "web"
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_keda_lag_trigger_matches_the_workers() -> None:
    cfg = config()
    partitions = int(cfg["STREAMSERVE_TOPIC_PARTITIONS"])
    scaled = one("keda-scaledobject.yaml", "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "streamserve-worker"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions
    trigger = scaled["triggers"][0]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == cfg["STREAMSERVE_CONSUMER_GROUP"]
    assert meta["topic"] == cfg["STREAMSERVE_REQUESTS_TOPIC"]
    assert meta["bootstrapServers"] == cfg["STREAMSERVE_KAFKA_BOOTSTRAP_SERVERS"]
    assert int(meta["lagThreshold"]) >= 1
    keda_sasl = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                 "SCRAM-SHA-512": "scram_sha512"}
    assert meta["sasl"] == keda_sasl[cfg["STREAMSERVE_KAFKA_SASL_MECHANISM"]]
    assert (meta["tls"] == "enable") == cfg["STREAMSERVE_KAFKA_SECURITY_PROTOCOL"].endswith(
        "SSL")
    auth = one("keda-scaledobject.yaml", "TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == "streamserve-secrets" and ref["key"] in secret()
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"username", "password"}


def test_hpa_alternative_matches_the_workers() -> None:
    cfg = config()
    hpa = one("hpa-external.yaml", "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == "streamserve-worker"
    assert hpa["maxReplicas"] <= int(cfg["STREAMSERVE_TOPIC_PARTITIONS"])
    selector = hpa["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
    assert selector == {"consumergroup": cfg["STREAMSERVE_CONSUMER_GROUP"],
                        "topic": cfg["STREAMSERVE_REQUESTS_TOPIC"]}
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_cost_trigger_queries_metrics_the_worker_exports() -> None:
    scaled = one("keda-cost-scaledobject.yaml", "ScaledObject")["spec"]
    assert scaled["maxReplicaCount"] <= int(config()["STREAMSERVE_TOPIC_PARTITIONS"])
    query = scaled["triggers"][0]["metadata"]["query"]
    metrics = WorkerMetrics()
    metrics.observe_result("m", "ok", Timings(inference_s=0.1))
    metrics.observe_batch("m", 1)
    exposed = metrics.render()[0].decode()
    for name in set(re.findall(r"streamserve_[a-z_]+", query)):
        assert re.search(rf"^{name}[{{ ]", exposed, re.M), name
    assert f'consumergroup="{config()["STREAMSERVE_CONSUMER_GROUP"]}"' in query


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_cost_trigger_query_is_valid_promql(tmp_path: Path) -> None:
    query = one("keda-cost-scaledobject.yaml", "ScaledObject")["spec"]["triggers"][0][
        "metadata"]["query"]
    rules = {"groups": [{"name": "check", "rules": [{"record": "streamserve:backlog_work",
                                                      "expr": query}]}]}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    subprocess.run(["promtool", "check", "rules", str(path)], check=True, timeout=60,
                   capture_output=True)
