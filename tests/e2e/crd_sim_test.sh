#!/usr/bin/env bash
# nvdra's CRDs (crds/) through kubectl against `nvdra-sim serve`: a ComputeDomain gets NVIDIA's
# defaults, and bad input is refused with NVIDIA's messages (anchor-nvidia.md §11, items 1–5;
# NVIDIA's own ComputeDomain manifests: nvidia_specs_sim_test.sh). Usage: crd_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

run_sim serve
kubectl apply -k "$root/crds" >/dev/null
check "CRDs" "computedomaincliques.resource.nvidia.com computedomains.resource.nvidia.com" \
  "$(kubectl get crd -o jsonpath='{.items[*].metadata.name}')"
check "namespaced" "true true" "$(kubectl api-resources --api-group=resource.nvidia.com --no-headers | awk '{print $(NF-1)}' | tr '\n' ' ' | sed 's/ $//')"

kubectl apply -f - >/dev/null <<'YAML'
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: cd}
spec:
  channel: {resourceClaimTemplate: {name: cd-channel}}
YAML
check "defaults" '{"channel":{"allocationMode":"Single","resourceClaimTemplate":{"name":"cd-channel"}},"numNodes":0}' \
  "$(kubectl get computedomain cd -o jsonpath='{.spec}')"
check "columns" "NAME AGE" "$(kubectl get computedomains | head -1 | tr -s ' ' | sed 's/ $//')"
contains "spec immutable" "A computeDomain.spec is immutable" \
  "$(kubectl patch computedomain cd --type merge -p '{"spec":{"numNodes":2}}' 2>&1 || true)"
contains "channel required" "spec.channel: Required value" "$(kubectl apply -f - 2>&1 <<'YAML' || true
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: bad}
spec: {numNodes: 1}
YAML
)"
bad=$(kubectl apply -f - 2>&1 <<'YAML' || true
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: bad}
spec:
  numNodes: -1
  channel: {resourceClaimTemplate: {name: x}, allocationMode: Some}
  placement: {policy: Anywhere}
YAML
)
contains "numNodes minimum" "spec.numNodes: Invalid value: -1" "$bad"
contains "allocationMode enum" 'spec.channel.allocationMode: Unsupported value: "Some"' "$bad"
contains "placement policy enum" 'spec.placement.policy: Unsupported value: "Anywhere"' "$bad"

# Status goes through the subresource with its own defaults and validation.
kubectl patch computedomain cd --subresource=status --type merge \
  -p '{"status":{"nodes":[{"name":"n1","ipAddress":"10.0.0.1","cliqueID":"c.1","index":0}]}}' >/dev/null
check "status defaults" "NotReady NotReady" \
  "$(kubectl get computedomain cd -o jsonpath='{.status.status} {.status.nodes[0].status}')"
contains "node fields required" "cliqueID: Required value" \
  "$(kubectl patch computedomain cd --subresource=status --type merge -p '{"status":{"nodes":[{"name":"n2","ipAddress":"10.0.0.2"}]}}' 2>&1 || true)"
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomainClique
metadata: {name: uid.c.1}
daemons:
- {nodeName: n1, ipAddress: 10.0.0.1, cliqueID: c.1, index: 0}
YAML
check "clique daemon default" "NotReady" "$(kubectl get computedomainclique uid.c.1 -o jsonpath='{.daemons[0].status}')"
summary
