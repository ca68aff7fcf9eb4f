#!/usr/bin/env bash
# Starts minikube with the docker driver (host kernel, so BTF and tracepoints are the host's),
# builds the images inside minikube's Docker and applies the minikube overlay.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${TAG:-0.1.0}
for tool in minikube kubectl; do command -v "$tool" >/dev/null || { echo "up.sh: $tool not found" >&2; exit 1; }; done
minikube status >/dev/null 2>&1 || minikube start --driver=docker
minikube image build -f deploy/docker/agent.Dockerfile -t ghcr.io/kernelscope/agent:"$TAG" .
minikube image build -f deploy/docker/collector.Dockerfile -t ghcr.io/kernelscope/collector:"$TAG" .
kubectl apply -k deploy/overlays/minikube
kubectl -n kscope rollout status daemonset/kscope-agent --timeout=180s
echo "Jaeger UI: kubectl -n kscope-examples port-forward svc/jaeger 16686"
