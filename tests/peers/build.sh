#!/usr/bin/env bash
# Builds the test peers from the Go module proxy (or finds them in Debian) into a cache outside the
# repository, one directory per peer and version. A finished peer is never rebuilt.
#
#   bash tests/peers/build.sh NAME...     # otelcol kube-apiserver kubectl telemetrygen jaeger kustomize
#                                         # etcd prometheus (the last two only check the Debian binary)
#                                         # otapbench (the OTAP bench's Go anchor, not in `all`)
#   bash tests/peers/build.sh all
#   bash tests/peers/build.sh --path NAME # print the binary path (no build)
#
# Cache: ${KSCOPE_PEERS_DIR:-$HOME/.cache/kscope/peers}/<unit>-<version>/ ; a unit can hold several
# binaries (kubernetes-v1.36.3 holds kube-apiserver and kubectl). Concurrent calls for the same unit
# wait on a lock file and then reuse the result. Logs: <unit>-<version>.build.log beside the unit.
set -euo pipefail

PEERS_DIR="${KSCOPE_PEERS_DIR:-$HOME/.cache/kscope/peers}"

# Versions. OpenTelemetry: go-peers.md recommends v0.159.0, but the module proxy reachable here
# serves the otelarrow receiver and exporter zips only at v0.141-v0.143 and v0.145 (v0.159/v0.161
# answer 403/404), so every collector component, ocb and telemetrygen move together to v0.145.0
# (ocb's strict versioning needs the same minor everywhere).
OTEL_VERSION=v0.145.0
K8S_VERSION=v1.36.3          # k8s.io/kubernetes; staging modules at v0.36.3
K8S_STAGING_VERSION=v0.36.3
KUSTOMIZE_VERSION=v5.8.2      # v5.8.3 needs go >= 1.27; this machine has 1.26
# Jaeger: module tag v1.76.0 is the same commit as Jaeger v2.13.0; its cmd/jaeger is the v2 binary.
# The proxy here does not serve go-peers.md's v2.20.0 commit pseudo-version (403).
JAEGER_VERSION=v1.76.0
# The reference OTel Arrow Go library the otelarrow components of OTEL_VERSION use; otapbench
# (tests/bench/go/otapbench) is keyed by it and by its own source, so an edit rebuilds it.
OTEL_ARROW_VERSION=v0.46.0
OTAPBENCH_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../bench/go/otapbench" && pwd)"

unit_of() {
  case "$1" in
    otelcol) echo "otelcol-$OTEL_VERSION" ;;
    telemetrygen) echo "telemetrygen-$OTEL_VERSION" ;;
    kube-apiserver|kubectl) echo "kubernetes-$K8S_VERSION" ;;
    jaeger) echo "jaeger-$JAEGER_VERSION" ;;
    kustomize) echo "kustomize-$KUSTOMIZE_VERSION" ;;
    otapbench) echo "otapbench-$OTEL_ARROW_VERSION-$(cat "$OTAPBENCH_SRC"/go.mod "$OTAPBENCH_SRC"/go.sum "$OTAPBENCH_SRC"/main.go | sha256sum | cut -c1-12)" ;;
    etcd|prometheus) echo "debian" ;;
    *) echo "build.sh: unknown peer '$1' (known: otelcol kube-apiserver kubectl telemetrygen jaeger kustomize etcd prometheus otapbench)" >&2; return 2 ;;
  esac
}

path_of() {
  case "$1" in
    etcd) echo /usr/bin/etcd ;;
    prometheus) echo /usr/bin/prometheus ;;
    *) echo "$PEERS_DIR/$(unit_of "$1")/$1" ;;
  esac
}

# Go settings common to every build (wrapper modules live outside any workspace).
go_env() {
  export GOFLAGS="-buildvcs=false"
  export GOWORK=off
  export CGO_ENABLED=0
  export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"
  command -v go >/dev/null || { echo "build.sh: go not found on PATH" >&2; return 1; }
}

build_otelcol() { # $1 = output dir
  local out="$1" work="$PEERS_DIR/.work/otelcol-$OTEL_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  GOBIN="$work/bin" go install "go.opentelemetry.io/collector/cmd/builder@$OTEL_VERSION"
  local core=go.opentelemetry.io/collector contrib=github.com/open-telemetry/opentelemetry-collector-contrib
  cat >"$work/builder-config.yaml" <<EOF
dist:
  module: kscope.test/otelcol
  name: otelcol
  description: Reference OpenTelemetry Collector for kernelscope interop tests
  output_path: $work/dist
receivers:
  - gomod: $core/receiver/otlpreceiver $OTEL_VERSION
  - gomod: $contrib/receiver/otelarrowreceiver $OTEL_VERSION
exporters:
  - gomod: $core/exporter/otlpexporter $OTEL_VERSION
  - gomod: $core/exporter/otlphttpexporter $OTEL_VERSION
  - gomod: $core/exporter/debugexporter $OTEL_VERSION
  - gomod: $contrib/exporter/otelarrowexporter $OTEL_VERSION
  - gomod: $contrib/exporter/fileexporter $OTEL_VERSION
processors:
  - gomod: $core/processor/batchprocessor $OTEL_VERSION
EOF
  "$work/bin/builder" --config "$work/builder-config.yaml"
  cp "$work/dist/otelcol" "$out/otelcol"
  cp "$work/builder-config.yaml" "$out/"
  rm -rf "$work"
}

build_kubernetes() {
  local out="$1" work="$PEERS_DIR/.work/kubernetes-$K8S_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  # k/k requires its staging modules at v0.0.0 and replaces them with ./staging paths, which
  # `go install` refuses. A wrapper module maps each one to the published v0.X.Y instead.
  local kkmod
  kkmod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$kkmod" ] || { echo "build.sh: could not fetch k8s.io/kubernetes@$K8S_VERSION go.mod" >&2; return 1; }
  local goline
  goline=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kkmod")
  {
    echo "module kscope.test/kubernetes"
    echo
    echo "go $goline"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's/^[[:space:]]*\(k8s\.io\/[a-z0-9-]*\) v0\.0\.0$/\1/p' "$kkmod" | while read -r m; do
      echo "	$m => $m $K8S_STAGING_VERSION"
    done
    echo ")"
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  (
    cd "$work"
    GOTOOLCHAIN=local go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
    local minor ld
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    GOTOOLCHAIN=local go build -ldflags "$ld" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    GOTOOLCHAIN=local go build -ldflags "$ld" -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl
  )
  cp "$work/go.mod" "$out/wrapper.go.mod"
  rm -rf "$work"
}

build_telemetrygen() {
  local out="$1"
  GOBIN="$out" go install -ldflags "-s -w" "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$OTEL_VERSION"
}

build_otapbench() { # our own Go program over the reference library, pinned by its go.sum
  local out="$1" work="$PEERS_DIR/.work/otapbench"
  rm -rf "$work"; mkdir -p "$work"
  cp "$OTAPBENCH_SRC"/go.mod "$OTAPBENCH_SRC"/go.sum "$OTAPBENCH_SRC"/main.go "$work/"
  grep -q "github.com/open-telemetry/otel-arrow/go $OTEL_ARROW_VERSION" "$work/go.mod" || { echo "build.sh: otapbench go.mod does not pin otel-arrow $OTEL_ARROW_VERSION" >&2; return 1; }
  (cd "$work" && GOTOOLCHAIN=local go build -ldflags "-s -w" -o "$out/otapbench" .)
  rm -rf "$work"
}

build_kustomize() {
  local out="$1"
  GOBIN="$out" go install -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

build_jaeger() {
  # v1.76.0's go.mod has a sarama replace, so `go install` refuses it; a wrapper repeats it.
  # cmd/jaeger at this commit is Jaeger v2 (a collector distribution with jaeger_storage/query).
  local out="$1" work="$PEERS_DIR/.work/jaeger-$JAEGER_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  cat >"$work/go.mod" <<EOF
module kscope.test/jaeger

go 1.24.6

require github.com/jaegertracing/jaeger $JAEGER_VERSION

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
EOF
  (
    cd "$work"
    # The proxy here serves these modules' zips but its checksum-database mirror answers 404 for
    # the collector v0.140.x/v1.46.x versions Jaeger pins, so they are taken from the proxy
    # (over TLS) without sumdb verification; go.sum still records their hashes.
    export GONOSUMDB="go.opentelemetry.io/collector,github.com/open-telemetry/opentelemetry-collector-contrib"
    go get "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
    go build -ldflags "-s -w" -o "$out/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  rm -rf "$work"
}

# Builds one unit under a lock; a second caller waits, then finds it done.
ensure() {
  local name="$1" unit bin
  # Explicit returns: errexit is off here (ensure runs under `||`).
  unit=$(unit_of "$name") || return 2
  bin=$(path_of "$name") || return 2
  if [ "$unit" = debian ]; then
    [ -x "$bin" ] || { echo "build.sh: $bin missing; install the Debian package (scripts/install.sh)" >&2; return 1; }
    echo "$bin"; return 0
  fi
  [ -x "$bin" ] && { echo "$bin"; return 0; }
  mkdir -p "$PEERS_DIR/.work"
  local log="$PEERS_DIR/$unit.build.log"
  exec 9>"$PEERS_DIR/.$unit.lock"
  flock 9
  if [ -x "$bin" ]; then exec 9>&-; echo "$bin"; return 0; fi
  local tmp="$PEERS_DIR/.$unit.tmp"
  rm -rf "$tmp"; mkdir -p "$tmp"
  echo "build.sh: building $unit (log: $log)" >&2
  local start=$SECONDS rc=0
  # A fresh bash process: inside `ensure ... || failed=1` errexit is off for the whole call tree,
  # even in subshells that `set -e` again, so a failing step would not stop the build.
  bash "$0" --build-unit "$unit" "$tmp" >"$log" 2>&1 || rc=$?
  if [ $rc -ne 0 ]; then
    exec 9>&-
    echo "build.sh: building $unit failed (exit $rc); last lines of $log:" >&2
    tail -n 25 "$log" >&2
    return 1
  fi
  echo "built in $((SECONDS - start))s on $(date -u +%FT%TZ) with $(go version)" >"$tmp/BUILD_INFO"
  rm -rf "${PEERS_DIR:?}/$unit"
  mv "$tmp" "$PEERS_DIR/$unit"
  exec 9>&-
  echo "build.sh: built $unit in $((SECONDS - start))s" >&2
  echo "$bin"
}

main() {
  [ $# -gt 0 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
  if [ "$1" = --path ]; then shift; for n in "$@"; do path_of "$n"; done; exit 0; fi
  if [ "$1" = --build-unit ]; then go_env; set -x; "build_${2%%-v*}" "$3"; exit 0; fi
  if [ "$1" = all ]; then set -- otelcol kube-apiserver telemetrygen jaeger kustomize etcd prometheus; fi
  local failed=0
  for n in "$@"; do ensure "$n" || failed=1; done
  exit $failed
}

main "$@"
