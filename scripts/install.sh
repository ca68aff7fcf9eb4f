#!/usr/bin/env bash
# Installs everything this project needs on a Debian 12 machine as root: system packages,
# npm dependencies (which builds the native addon) and, when asked, the test peers.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool make gcc g++ python3 pkg-config
  etcd-server prometheus iproute2 procps)

need=()
for p in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "install.sh: missing system packages (${need[*]}); run as root" >&2; exit 1; fi
  echo "install.sh: installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's prometheus package starts a system service on :9090; tests start their own on loopback.
  systemctl disable --now prometheus prometheus-node-exporter etcd >/dev/null 2>&1 || true
  pkill -x prometheus 2>/dev/null || true; pkill -x etcd 2>/dev/null || true
fi

# tracefs: tracepoint attach needs it mounted.
if [ ! -d /sys/kernel/tracing/events ] && [ "$(id -u)" -eq 0 ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
# The native addon: built by node-gyp (npm's install hook); rebuild if missing.
[ -f agent/native/build/Release/bpf_bridge.node ] || npm run build:native
# The bundled agent and collector (dist/): what start.sh and the images run, without tsx.
node scripts/build-dist.mjs --check || npm run build:dist
