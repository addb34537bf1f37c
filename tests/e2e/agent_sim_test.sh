#!/usr/bin/env bash
# nvdra-agent on every node of `nvdra-sim up`: NVIDIA's quickstart manifests, unchanged, run with
# devices prepared by the agents (CDI specs, MIG devices, MPS daemons) and leave nothing behind
# when deleted; the agents keep their ResourceSlices published (a deleted slice comes back),
# taint a GPU that reports an XID, and serve metrics. Usage: agent_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
compat="$(data_dir NVDRA_COMPAT_DIR)/quickstart" || exit

cdi_specs() { find "$work/nodes" -path '*/var/run/cdi/*.json' | wc -l; }
mig_devices() { cat "$work"/nodes/*/var/lib/nvdra-sim-gpu/state.json 2>/dev/null | grep -o '"uuid"' | wc -l; }
mps_daemons() { find "$work/nodes" -path '*/mps/*/pipe/control' | wc -l; }

run_sim up --topology "$root/examples/topologies/demo.yaml" --root "$work/nodes"
pools() { kubectl get resourceslices --field-selector "spec.driver=$1" -o jsonpath='{range .items[*]}{.spec.pool.name}{"\n"}{end}' | sort -u | wc -l; }
# Every node's agent: one pool per driver (the control plane's is empty: the driver is up, with no
# devices); the A100 node with dynamic MIG publishes one slice per GPU.
check "gpu pools" "12" "$(until_equal 12 pools gpu.nvidia.com)"
check "compute-domain pools" "12" "$(until_equal 12 pools compute-domain.nvidia.com)"
mig_slices() { kubectl get resourceslices --field-selector spec.nodeName=a100-mig-0,spec.driver=gpu.nvidia.com -o name | wc -l; }
check "dynamic MIG slices" "8" "$(until_equal 8 mig_slices)"
check "attributes" "architecture brand cudaComputeCapability cudaDriverVersion driverVersion index minor productName resource.kubernetes.io/pciBusID resource.kubernetes.io/pcieRoot type uuid" \
  "$(kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-0,spec.driver=gpu.nvidia.com -o json | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["items"][0]["spec"]["devices"][0]["attributes"])))')"
check "clique on the channel" "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.1" \
  "$(kubectl get resourceslices --field-selector spec.driver=compute-domain.nvidia.com,spec.nodeName=nvl72-a-node-0 -o jsonpath='{.items[0].spec.devices[0].attributes.cliqueID.string}')"
# `nvdra-agent discover` prints, with no API server, what the node's agent published.
published_content() {  # DRIVER < a List of ResourceSlices: its devices and counter sets, sorted
  python3 -c 'import json, sys
items = [i["spec"] for i in json.load(sys.stdin)["items"] if i["spec"]["driver"] == sys.argv[1]]
print(json.dumps(sorted((x for s in items for x in s.get("devices", []) + s.get("sharedCounters", [])),
                        key=lambda x: x["name"]), sort_keys=True))' "$1"
}
for node in dgx-h100-0 a100-mig-0 nvl72-a-node-0; do
  n="$work/nodes/$node"
  gates=""; [[ $node == dgx-h100-* ]] && gates=PassthroughSupport=true  # as the topology says
  discovered=$("$BIN/nvdra-agent" discover --device-backend sim --root "$n" --sim-node-config "$n/node.yaml" \
    --node-name "$node" --feature-gates "$gates" 2>/dev/null)
  for driver in gpu.nvidia.com compute-domain.nvidia.com; do
    check "discover prints what the agent published: $node $driver" \
      "$(kubectl get resourceslices --field-selector "spec.nodeName=$node" -o json | published_content $driver)" \
      "$(published_content $driver <<<"$discovered")"
  done
done
check "discover: a clear error without a GPU driver" \
  "nvdra-agent discover: cannot load libnvidia-ml.so.1 under driver root /nonexistent (is the NVIDIA driver installed?)" \
  "$("$BIN/nvdra-agent" discover --nvidia-driver-root /nonexistent 2>&1 | grep -o '^.*installed?)' || true)"
kubectl apply -f "$root/manifests/base/deviceclasses.yaml" >/dev/null

for m in $quickstart_manifests; do
  ns=$(apply_manifest "$compat/$m.yaml")
  check "$m runs" "yes" "$(all_running "$ns")"
  claims=$(kubectl get resourceclaims -n "$ns" -o name | wc -l)
  check "$m: one CDI spec per claim" "$claims" "$(cdi_specs)"
  case $m in
    */gpu-test4) check "$m: MIG devices created" \
      "$(kubectl get resourceclaims -n "$ns" -o jsonpath='{.items[*].status.allocation.devices.results[*].device}' | wc -w)" "$(mig_devices)" ;;
    */gpu-test-mps) check "$m: an MPS daemon" "1" "$(mps_daemons)" ;;
  esac
  kubectl delete namespace "$ns" --wait=true --timeout=30s >/dev/null
  check "$m: CDI specs removed" "0" "$(until_equal 0 cdi_specs)"
  check "$m: MIG devices destroyed" "0" "$(until_equal 0 mig_devices)"
  check "$m: MPS daemons stopped" "0" "$(until_equal 0 mps_daemons)"
done
check "time slices reset" "yes" "$(grep -q -- '--set-timeslice 0' "$work"/nodes/*/var/log/nvdra-sim-tools.log && echo yes)"

# Passthrough: the dgx-h100 nodes run with PassthroughSupport (demo topology), so each whole GPU
# is also published as gpu-vfio-<n>; NVIDIA's VFIO demo manifests.
published() {  # NODE: the node's gpu.nvidia.com device names
  kubectl get resourceslices --field-selector "spec.nodeName=$1,spec.driver=gpu.nvidia.com" \
    -o jsonpath='{.items[*].spec.devices[*].name}' | tr ' ' '\n' | sort
}
vfio_count() { published "$1" | grep -c '^gpu-vfio-' || true; }
check "passthrough node: a VFIO device per GPU" "8" "$(until_equal 8 vfio_count dgx-h100-0)"
check "other nodes: none" "0" "$(vfio_count a100-mig-0)"
vfio_state() { grep -o '"vfioBound":\[[0-9,]*\]' "$work/nodes/$1/var/lib/nvdra-sim-gpu/state.json"; }
ns=$(apply_manifest "$compat/v1/gpu-test-vfiopci.yaml")
check "gpu-test-vfiopci: pod Running" "yes" "$(all_running "$ns")"
device=$(kubectl get resourceclaims -n "$ns" -o jsonpath='{.items[0].status.allocation.devices.results[0].device}')
node=$(kubectl get pod pod1 -n "$ns" -o jsonpath='{.spec.nodeName}')
minor=${device#gpu-vfio-}
check "gpu-test-vfiopci: a VFIO device" "gpu-vfio-$minor" "$device"
check "gpu-test-vfiopci: the GPU is bound to vfio-pci" "\"vfioBound\":[$minor]" "$(vfio_state "$node")"
sibling() { published "$node" | grep -c "^gpu-$minor\$" || true; }
check "gpu-test-vfiopci: its gpu-$minor twin is withdrawn" "0" "$(until_equal 0 sibling)"
spec=$(cat "$work/nodes/$node"/var/run/cdi/*.json)
contains "gpu-test-vfiopci: CDI passes the VFIO group" "\"path\":\"/dev/vfio/$((32 + minor))\"" "$spec"
contains "gpu-test-vfiopci: and hides the NVIDIA devices" "NVIDIA_VISIBLE_DEVICES=void" "$spec"
kubectl delete namespace "$ns" --wait=true --timeout=30s >/dev/null
check "gpu-test-vfiopci: the GPU is back on nvidia" '"vfioBound":[]' "$(until_equal '"vfioBound":[]' vfio_state "$node")"
check "gpu-test-vfiopci: gpu-$minor published again" "1" "$(until_equal 1 sibling)"
check "gpu-test-vfiopci: CDI specs removed" "0" "$(until_equal 0 cdi_specs)"
# Upstream's gpu-test-vfio-config puts its pod in a namespace nothing creates: applied unchanged,
# the pod is refused as on any cluster. Its claim template (LegacyOnly, enableAPIDevice) is then
# used by the same pod in the template's namespace.
out=$(kubectl apply -f "$compat/v1/gpu-test-vfio-config.yaml" 2>&1 || true)
contains "gpu-test-vfio-config: the pod's namespace is missing" 'namespaces "gpu-test-vfiopci" not found' "$out"
sed 's/namespace: gpu-test-vfiopci/namespace: gpu-test-vfio/' "$compat/v1/gpu-test-vfio-config.yaml" | kubectl apply -f - >/dev/null
check "gpu-test-vfio-config: pod Running" "yes" "$(all_running gpu-test-vfio)"
contains "gpu-test-vfio-config: the IOMMU API device" '"path":"/dev/vfio/vfio"' "$(cat "$work"/nodes/*/var/run/cdi/*.json)"
kubectl delete namespace gpu-test-vfio --wait=true --timeout=30s >/dev/null
check "gpu-test-vfio-config: CDI specs removed" "0" "$(until_equal 0 cdi_specs)"

# A deleted slice comes back (kubelet wipes slices on restart), with a new pool generation.
slice=$(kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-1,spec.driver=gpu.nvidia.com -o jsonpath='{.items[0].metadata.name}')
gen=$(kubectl get resourceslice "$slice" -o jsonpath='{.spec.pool.generation}')
kubectl delete resourceslice "$slice" >/dev/null
back() { kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-1,spec.driver=gpu.nvidia.com -o jsonpath='{.items[*].spec.pool.generation}'; }
check "slice recreated" "$((gen + 1))" "$(until_equal $((gen + 1)) back)"
check "under a new name" "" "$(kubectl get resourceslice "$slice" -o name 2>/dev/null || true)"

# A GPU reporting XID 79 gets a NoSchedule taint on its device; the Node gets an Event.
mkdir -p "$work/nodes/dgx-h100-1/faults"
echo 79 >"$work/nodes/dgx-h100-1/faults/xid-3"
taint() { kubectl get resourceslices --field-selector spec.nodeName=dgx-h100-1,spec.driver=gpu.nvidia.com -o jsonpath='{.items[0].spec.devices[?(@.name=="gpu-3")].taints[0].key}={.items[0].spec.devices[?(@.name=="gpu-3")].taints[0].value}:{.items[0].spec.devices[?(@.name=="gpu-3")].taints[0].effect}'; }
check "XID taint" "gpu.nvidia.com/xid=79:NoSchedule" "$(until_equal gpu.nvidia.com/xid=79:NoSchedule taint)"
contains "GPU event" "GPUUnhealthy" "$(kubectl get events.v1.events.k8s.io -A -o jsonpath='{.items[*].reason}')"

# Metrics of an agent (its address is left in the node folder).
addr=$(cat "$work/nodes/dgx-h100-0/metrics-address")
metrics=$(python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://$addr/metrics').read().decode())")
contains "requests counter" 'nvidia_dra_requests_total{driver="gpu.nvidia.com",operation="prepare"}' "$metrics"
contains "prepared devices" 'nvidia_dra_prepared_devices{device_type="gpu",driver="gpu.nvidia.com",node="dgx-h100-0"} 0' "$metrics"
contains "published slices" 'nvdra_agent_published_slices{driver="compute-domain.nvidia.com"} 1' "$metrics"
contains "latency by type" 'nvdra_agent_claim_duration_seconds_count{device_type="gpu",driver="gpu.nvidia.com",operation="prepare"}' "$metrics"
check "ready" "ok" "$(python3 -c "import urllib.request; print('ok' if urllib.request.urlopen('http://$addr/readyz').status == 200 else 'no')")"
summary
