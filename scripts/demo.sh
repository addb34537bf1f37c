#!/usr/bin/env bash
# make demo: starts a simulated GPU cluster (nvdra-sim up, examples/topologies/demo.yaml),
# installs NVIDIA's DeviceClasses, runs sample workloads (a whole GPU, a MIG slice, an MPS-shared
# GPU) and shows them reach Running, then prints how to continue with kubectl.
#
# Every node runs nvdra-agent with the simulated device backend: it publishes the node's
# ResourceSlices, and the simulated kubelets register it and call it over the real DRA gRPC
# protocol before starting a pod (MIG devices are created on demand, MPS daemons started, CDI
# specs written). The controller (ComputeDomains) is not built yet. In a terminal the cluster
# stays up until Ctrl-C; without one (CI) the demo checks every sample, tears down and exits 0,
# or exits non-zero naming what failed.
set -euo pipefail
BUILD=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/nv.XXXXXX)  # short: unix socket paths below it must fit 107 bytes
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$root/$BUILD/bin/nvdra-sim" up --topology "$root/examples/topologies/demo.yaml" \
  --agent-binary "$root/$BUILD/bin/nvdra-agent" --root "$work/nodes" \
  --kubeconfig-out "$work/kubeconfig" >"$work/out" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
if [ ! -s "$work/kubeconfig" ]; then
  echo "demo: nvdra-sim did not start"; cat "$work/sim.log"; exit 1
fi
export KUBECONFIG="$work/kubeconfig"
echo "== $(sed -n 2p "$work/out")"

step() { echo; echo "\$ $*"; "$@"; }
for _ in $(seq 50); do [ "$(kubectl get nodes -o name | wc -l)" -gt 1 ] && break; sleep 0.1; done
step kubectl get nodes
step kubectl apply -f "$root/manifests/base/deviceclasses.yaml"
step kubectl apply -f "$root/examples/demo/gpu-pod.yaml"
step kubectl apply -f "$root/examples/demo/mig-pod.yaml" -f "$root/examples/demo/mps-pod.yaml"

failed=""
for pod in gpu-pod mig-pod mps-pod; do
  if ! kubectl wait -n nvdra-demo "pod/$pod" --for=jsonpath='{.status.phase}'=Running --timeout=60s >/dev/null; then
    failed="$failed $pod"
  fi
done
step kubectl get pods -n nvdra-demo -o wide
step kubectl get resourceclaims -n nvdra-demo
echo
echo "\$ kubectl get resourceclaims -n nvdra-demo -o jsonpath=<devices>"
kubectl get resourceclaims -n nvdra-demo \
  -o jsonpath='{range .items[*]}{.metadata.name}{" -> "}{.status.allocation.devices.results[*].device}{" on "}{.status.allocation.nodeSelector.nodeSelectorTerms[0].matchFields[0].values[0]}{"\n"}{end}'

echo
echo "\$ ls <node>/var/run/cdi; cat <node>/var/log/nvdra-sim-tools.log   # what the agents did"
ls "$work"/nodes/*/var/run/cdi/*.json | sed "s|$work/nodes/||"
cat "$work"/nodes/*/var/log/nvdra-sim-tools.log 2>/dev/null || true
for uid in $(kubectl get resourceclaims -n nvdra-demo -o jsonpath='{.items[*].metadata.uid}'); do
  ls "$work"/nodes/*/var/run/cdi/k8s.gpu.nvidia.com-claim_"$uid".json >/dev/null 2>&1 || failed="$failed cdi($uid)"
done
grep -q set_default_active_thread_percentage "$work"/nodes/*/var/log/nvdra-sim-tools.log || failed="$failed mps-daemon"

# Each claim holds the device its request asked for.
mig_device=$(kubectl get resourceclaims -n nvdra-demo -o jsonpath='{.items[?(@.metadata.annotations.resource\.kubernetes\.io/pod-claim-name=="mig")].status.allocation.devices.results[0].device}')
[[ "$mig_device" == gpu-*-mig-1g5gb-* ]] || failed="$failed mig-device($mig_device)"

if [ -n "$failed" ]; then
  echo "demo: FAILED:$failed"; exit 1
fi
echo
echo "demo: every sample reached its expected state."
if [ -t 0 ]; then
  echo "The cluster stays up. In another terminal:"
  echo "  export KUBECONFIG=$work/kubeconfig"
  echo "  kubectl get pods -A; kubectl get resourceclaims -A; kubectl get resourceslices"
  echo "Press Ctrl-C to stop."
  wait "$sim_pid" || true
fi
