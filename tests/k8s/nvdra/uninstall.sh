#!/usr/bin/env bash
# Removes what install.sh installed (kubectl delete -k, as an operator would) and checks that
# nvdra is gone from the cluster: its namespace and pods, its CRDs and DeviceClasses, and, once
# kubelet notices the plugins left, the nodes' ResourceSlices of both drivers.
#   uninstall.sh K8S_STATE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=$1
export KUBECONFIG=$state/kubeconfig/admin.kubeconfig
fail() { echo "uninstall: $*" >&2; exit 1; }
kubectl delete -k "$here" --wait=true --timeout=180s >/dev/null
kubectl label nodes --all nvidia.com/gpu.present- >/dev/null
[ -z "$(kubectl get namespace nvdra-system --ignore-not-found -o name)" ] || fail "namespace nvdra-system left"
[ -z "$(kubectl get crd -o name | grep nvidia.com || true)" ] || fail "CRDs left"
[ -z "$(kubectl get deviceclasses -o name | grep nvidia.com || true)" ] || fail "DeviceClasses left"
slices() { kubectl get resourceslices -o jsonpath='{.items[*].spec.driver}' | tr ' ' '\n' | grep -c nvidia.com || true; }
for _ in $(seq 120); do [ "$(slices)" = 0 ] && break; sleep 1; done
[ "$(slices)" = 0 ] || fail "$(slices) ResourceSlices of nvdra's drivers left after 2 minutes"
echo "uninstall: nvdra removed" >&2
