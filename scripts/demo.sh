#!/usr/bin/env bash
# make demo: starts nvdra-sim's API server, installs NVIDIA's DeviceClasses and a GPU claim with
# kubectl, and shows them.
#
# What runs today is the simulated API server; the scheduler, the simulated kubelets and the nvdra
# agent and controller are the next issues, so the claim is stored but not yet allocated. In a
# terminal the cluster stays up until Ctrl-C; without one (CI) the demo checks its results, tears
# down and exits 0, or exits non-zero naming what failed.
set -euo pipefail
BUILD=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$root/$BUILD/bin/nvdra-sim" serve --kubeconfig-out "$work/kubeconfig" >"$work/out" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
if [ ! -s "$work/kubeconfig" ]; then
  echo "demo: nvdra-sim did not start"; cat "$work/sim.log"; exit 1
fi
export KUBECONFIG="$work/kubeconfig"
echo "== nvdra-sim is up: $(sed -n 2p "$work/out" | sed 's/^ *//')"

step() { echo; echo "\$ $*"; "$@"; }
step kubectl apply -f "$root/manifests/base/deviceclasses.yaml"
step kubectl apply -f "$root/examples/demo/gpu-claim.yaml"
step kubectl get deviceclasses
step kubectl get resourceclaims -n nvdra-demo -o wide

failed=""
[ "$(kubectl get deviceclasses -o name | wc -l)" -eq 5 ] || failed="$failed deviceclasses"
[ "$(kubectl get resourceclaim single-gpu -n nvdra-demo -o jsonpath='{.spec.devices.requests[0].exactly.deviceClassName}')" = "gpu.nvidia.com" ] || failed="$failed resourceclaim"

if [ -n "$failed" ]; then
  echo "demo: FAILED:$failed"; exit 1
fi
echo
echo "demo: every sample reached its expected state."
if [ -t 0 ]; then
  echo "The cluster stays up. In another terminal:"
  echo "  export KUBECONFIG=$work/kubeconfig"
  echo "  kubectl get resourceclaims -A"
  echo "Press Ctrl-C to stop."
  wait "$sim_pid" || true
fi
