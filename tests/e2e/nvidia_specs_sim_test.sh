#!/usr/bin/env bash
# NVIDIA's demo specs (NVDRA_COMPAT_DIR), unchanged, against `nvdra-sim up --no-agents`: the
# quickstart manifests are scheduled with DRA onto simulated GPU nodes one at a time (every pod
# runs, deleting releases all; gpu-test4's MIG devices share one parent GPU); every quickstart
# manifest is accepted and a v1beta1 claim template reads back as v1; nvdra's CRDs accept NVIDIA's
# ComputeDomains with NVIDIA's defaults (anchor-nvidia.md §11). Without the specs: skipped.
# Usage: nvidia_specs_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
compat=$(data_dir NVDRA_COMPAT_DIR) || exit

run_sim up --topology "$root/examples/topologies/demo.yaml" --no-agents
for _ in $(seq 50); do [ "$(kubectl get nodes -o name | wc -l)" -eq 12 ] && break; sleep 0.1; done
check "nodes" "12" "$(kubectl get nodes -o name | wc -l)"
kubectl apply -f "$root/manifests/base/deviceclasses.yaml" >/dev/null

# The quickstart manifests one at a time: every pod runs, deleting releases all.
for m in $quickstart_manifests; do
  ns=$(apply_manifest "$compat/quickstart/$m.yaml")
  check "$m runs" "yes" "$(all_running "$ns")"
  kubectl delete namespace "$ns" --wait=true --timeout=30s >/dev/null
  check "$m released" "" "$(kubectl get resourceclaims -A -o name | grep -v '^$' || true)"
done

# The claims of gpu-test4 land on one parent GPU (matchAttribute parentUUID) as four MIG devices.
kubectl apply -f "$compat/quickstart/v1/gpu-test4.yaml" >/dev/null
all_running gpu-test4 >/dev/null
claim=$(kubectl get resourceclaims -n gpu-test4 -o jsonpath='{.items[0].metadata.name}')
devices=$(kubectl get resourceclaim -n gpu-test4 "$claim" -o jsonpath='{.status.allocation.devices.results[*].device}')
check "mig devices" "4" "$(wc -w <<<"$devices")"
check "one parent" "1" "$(tr ' ' '\n' <<<"$devices" | sed 's/-mig-.*//' | sort -u | wc -l)"
kubectl delete namespace gpu-test4 --wait=true --timeout=30s >/dev/null

# Every quickstart manifest (those not needing the ComputeDomain CRD) is accepted unchanged, and a
# v1beta1 claim template reads back as v1. gpu-test-vfio-config.yaml puts its pod in namespace
# gpu-test-vfiopci, which no manifest creates (a real cluster refuses it too): created first.
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: gpu-test-vfiopci}\n' | kubectl apply -f - >/dev/null
q="$compat/quickstart"
for f in "$q"/gpu-test7.yaml "$q"/gpu-test8.yaml "$q"/v1/gpu-test[0-9].yaml \
         "$q"/v1/gpu-test-mps.yaml "$q"/v1/gpu-test-vfiopci.yaml "$q"/v1/gpu-test-vfio-config.yaml; do
  if out=$(kubectl apply -f "$f" 2>&1); then pass=$((pass + 1)); else failed "accepted $f: $out"; fi
done
check "v1beta1 read as v1" "gpu.nvidia.com" \
  "$(kubectl get resourceclaimtemplates.v1.resource.k8s.io -n gpu-test7 single-gpu -o jsonpath='{.spec.spec.devices.requests[0].exactly.deviceClassName}')"
check "v1beta1 read as v1beta1" "gpu.nvidia.com" \
  "$(kubectl get resourceclaimtemplates.v1beta1.resource.k8s.io -n gpu-test7 single-gpu -o jsonpath='{.spec.spec.devices.requests[0].deviceClassName}')"

# NVIDIA's demo ComputeDomains, unchanged (server-side dry run: only the CRD judges them).
kubectl apply -k "$root/crds" >/dev/null
for f in channel-injection channel-injection-all nvbandwidth-test-job nvbandwidth-test-job-1 nvbandwidth-test-job-2; do
  out=$(python3 - "$compat/imex/$f.yaml" <<'PY'
import sys
docs = open(sys.argv[1]).read().split("\n---")
print("\n---".join(d for d in docs if "kind: ComputeDomain" in d))
PY
)
  check "$f accepted" "ok" "$(kubectl apply --dry-run=server -f - <<<"$out" >/dev/null 2>&1 && echo ok || echo refused)"
done
summary
