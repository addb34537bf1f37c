#!/usr/bin/env bash
# Crash safety of nvdra-agent: the agent is killed (SIGKILL) at a fault point inside prepare or
# unprepare of a dynamic MIG claim, nvdra-sim restarts it, and kubelet repeats the call. After the
# pod runs, exactly one MIG device, one CDI spec and one completed checkpoint entry exist; after
# the pod is deleted, none. Usage: agent_crash_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

cat >"$work/topology.yaml" <<'T'
name: crash
nodeGroups:
- {name: a100, count: 1, gpus: 2, gpu: A100-40GB, mig: dynamic}
T
node="$work/nodes/a100-0"
mig_devices() { grep -o '"uuid"' "$node/var/lib/nvdra-sim-gpu/state.json" 2>/dev/null | wc -l; }
cdi_specs() { ls "$node/var/run/cdi" 2>/dev/null | grep -c . || true; }
completed() { grep -o PrepareCompleted "$node/var/lib/kubelet/plugins/gpu.nvidia.com/nvdra-checkpoint.json" 2>/dev/null | wc -l; }

for point in prepare-started prepare-mig-created prepare-cdi-written unprepare-devices-done; do
  rm -rf "$work/nodes"
  NVDRA_AGENT_CRASH_AT=$point run_sim up --topology "$work/topology.yaml" --root "$work/nodes"
  for _ in $(seq 100); do kubectl get resourceslices 2>/dev/null | grep -q a100-0 && break; sleep 0.1; done
  kubectl apply -f "$root/manifests/base/deviceclasses.yaml" >/dev/null
  kubectl create namespace nvdra-demo >/dev/null
  kubectl apply -f "$root/examples/demo/mig-pod.yaml" >/dev/null
  state=$(kubectl wait -n nvdra-demo pod/mig-pod --for=jsonpath='{.status.phase}'=Running --timeout=60s >/dev/null 2>&1 && echo Running || echo stuck)
  check "$point: pod runs after the crash" "Running" "$state"
  check "$point: one MIG device" "1" "$(mig_devices)"
  check "$point: one CDI spec" "1" "$(cdi_specs)"
  check "$point: one completed claim" "1" "$(completed)"
  kubectl delete -n nvdra-demo pod/mig-pod --wait=false >/dev/null
  for _ in $(seq 300); do [ "$(mig_devices)" = 0 ] && [ "$(cdi_specs)" = 0 ] && [ "$(completed)" = 0 ] && break; sleep 0.1; done
  check "$point: MIG device destroyed" "0" "$(mig_devices)"
  check "$point: CDI spec removed" "0" "$(cdi_specs)"
  check "$point: checkpoint empty" "0" "$(completed)"
  check "$point: the agent did crash" "yes" "$([ -f "$node/.crashed-at-$point" ] && echo yes || echo no)"
  kubectl delete namespace nvdra-demo --wait=false >/dev/null 2>&1 || true
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
done
summary
