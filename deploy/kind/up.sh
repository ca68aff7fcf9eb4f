#!/usr/bin/env bash
# Creates a kind cluster, builds and loads the images, applies the kind overlay.
# Needs docker, kind and kubectl on the machine (the project's dev machines have no container
# engine; this script is for a workstation or CI runner that has one).
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${TAG:-0.1.0}
for tool in docker kind kubectl; do command -v "$tool" >/dev/null || { echo "up.sh: $tool not found" >&2; exit 1; }; done
docker info >/dev/null 2>&1 || { echo "up.sh: no running Docker engine" >&2; exit 1; }
kind get clusters | grep -qx kscope || kind create cluster --config deploy/kind/kind-config.yaml
docker build -f deploy/docker/agent.Dockerfile -t ghcr.io/kernelscope/agent:"$TAG" .
docker build -f deploy/docker/collector.Dockerfile -t ghcr.io/kernelscope/collector:"$TAG" .
kind load docker-image --name kscope ghcr.io/kernelscope/agent:"$TAG" ghcr.io/kernelscope/collector:"$TAG"
kubectl apply -k deploy/overlays/kind
kubectl -n kscope rollout status daemonset/kscope-agent --timeout=180s
kubectl -n kscope rollout status deployment/kscope-collector-lb --timeout=180s
echo "Jaeger UI: kubectl -n kscope-examples port-forward svc/jaeger 16686"
