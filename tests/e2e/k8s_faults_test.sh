#!/usr/bin/env bash
# Faults on the real cluster with nvdra installed: the agent pod force-deleted while kubelet
# prepares MIG claims on its node, the leading controller pod killed while it reconciles a
# ComputeDomain, a node's kubelet and its containerd restarted under running workloads. The
# workloads recover, and no claim is prepared twice (one MIG device and one CDI spec per
# allocated device and claim, one checkpoint entry per claim); deleting them leaves nothing.
# Usage: k8s_faults_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
source "$here/k8s_lib.sh"
compat=$(data_dir NVDRA_COMPAT_DIR) || exit

cdi_specs() { find "$K8S_STATE"/nodes/*/cdi/dynamic -name '*.json' 2>/dev/null | wc -l; }
mig_devices() { cat "$K8S_STATE"/nodes/*/sim/var/lib/nvdra-sim-gpu/state.json 2>/dev/null | grep -o '"uuid"' | wc -l; }
checkpoint_claims() {
  python3 -c 'import json, sys
print(sum(len(json.loads(open(p).read().splitlines()[1]).get("claims", {})) for p in sys.argv[1:]))' \
    "$K8S_STATE"/nodes/*/kubelet/plugins/*/nvdra-checkpoint.json
}
allocated() {  # NS: devices allocated to the namespace's claims
  kubectl get resourceclaims -n "$1" -o jsonpath='{.items[*].status.allocation.devices.results[*].device}' | wc -w
}
claims() { kubectl get resourceclaims -A --no-headers 2>/dev/null | wc -l; }
agent_on() { kubectl get pods -n nvdra-system -l app.kubernetes.io/component=kubelet-plugin --field-selector "spec.nodeName=$1" -o name; }
running() {  # NS: yes once every pod of NS is Running (3 minutes)
  for _ in $(seq 900); do
    local p; p=$(kubectl get pods -n "$1" -o jsonpath='{.items[*].status.phase}')
    [ -n "$p" ] && [ -z "$(tr ' ' '\n' <<<"$p" | grep -v '^Running$' || true)" ] && { echo yes; return; }
    sleep 0.2
  done
  echo "no: $(kubectl get pods -n "$1" -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase} {end}')"
}

echo "== the agent force-deleted while MIG claims are prepared"
ns=$(apply_manifest "$compat/quickstart/v1/gpu-test4.yaml")
# As soon as kubelet starts preparing on node-4 (the first MIG device exists), the agent goes.
for _ in $(seq 300); do [ "$(mig_devices)" -gt 0 ] && break; sleep 0.05; done
kubectl delete -n nvdra-system "$(agent_on node-4)" --force --grace-period=0 >/dev/null 2>&1
check "gpu-test4 runs after the agent's restart" yes "$(running "$ns")"
check "one MIG device per allocated device (none twice)" "$(allocated "$ns")" "$(mig_devices)"
check "one CDI spec per claim" "$(claims)" "$(cdi_specs)"
check "one checkpoint entry per claim" "$(claims)" "$(checkpoint_claims)"
check "containers see exactly their devices" ok "$(python3 "$here/k8s_injected.py" "$ns")"

echo "== the leading controller killed while it reconciles"
kubectl create namespace nvdra-demo >/dev/null
kubectl apply -f "$root/examples/demo/compute-domain-job.yaml" >/dev/null
leader=$(kubectl -n nvdra-system get lease nvdra-controller -o jsonpath='{.spec.holderIdentity}')
# The holder is <pod>-<uuid> (NVIDIA's form): the pod's name is what precedes the uuid.
kubectl delete -n nvdra-system pod "${leader%-*-*-*-*-*}" --force --grace-period=0 >/dev/null 2>&1
check "the Job's workers run" yes "$(running nvdra-demo)"
check "the domain turns Ready under the new leader" Ready "$(WAIT_S=120 until_equal Ready cd_field nvlink-pair '{.status.status}' nvdra-demo)"
contains "a new leader" nvdra-controller "$(kubectl -n nvdra-system get lease nvdra-controller -o jsonpath='{.spec.holderIdentity}' | grep -v "^$leader$")"
check "one IMEX DaemonSet" 1 "$(kubectl get daemonsets -n nvdra-system -o name | grep -c computedomain-daemon)"

echo "== kubelet and containerd restarted under running workloads"
k8s_ctl node-4 kubelet restart >/dev/null
k8s_ctl node-4 containerd restart >/dev/null
for _ in $(seq 300); do [ "$(node_ready node-4)" = True ] && break; sleep 0.2; done
check "node-4 Ready again" True "$(node_ready node-4)"
check "gpu-test4 still runs" yes "$(running "$ns")"
check "nothing prepared again" "$(allocated "$ns")" "$(mig_devices)"
ns8=$(apply_manifest "$compat/quickstart/gpu-test8.yaml")
check "a new claim is prepared after the restarts" yes "$(running "$ns8")"

echo "== everything deleted"
for n in "$ns" "$ns8" nvdra-demo; do kubectl delete namespace "$n" --wait=false >/dev/null; done
for n in "$ns" "$ns8" nvdra-demo; do kubectl wait --for=delete "namespace/$n" --timeout=180s >/dev/null 2>&1; done
check "no claims" 0 "$(claims)"
check "no CDI specs" 0 "$(WAIT_S=30 until_equal 0 cdi_specs)"
check "no MIG devices" 0 "$(WAIT_S=30 until_equal 0 mig_devices)"
check "checkpoints empty" 0 "$(WAIT_S=30 until_equal 0 checkpoint_claims)"
check "no domain labels" 0 "$(kubectl get nodes -l resource.nvidia.com/computeDomain -o name | wc -l)"
check "no IMEX DaemonSets" 0 "$(WAIT_S=30 until_equal 0 sh -c 'kubectl get daemonsets -n nvdra-system -o name | grep -c computedomain-daemon')"
summary
