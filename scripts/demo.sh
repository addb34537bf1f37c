#!/usr/bin/env bash
# make demo: a simulated GPU cluster running nvdra as it runs on a real one, and four sample
# workloads: a whole GPU, a MIG slice, an MPS-shared GPU and a two-node job in a ComputeDomain.
#
# nvdra-sim serves the Kubernetes API, schedules (structured DRA allocation) and runs one
# simulated kubelet per node (examples/topologies/demo.yaml: two 4-node NVL72-style racks, two
# DGX H100, an A100 with dynamic MIG). Everything else is nvdra's real programs with exactly the
# permissions manifests/base grants them: an nvdra-agent per node (publishes the node's devices,
# prepares claims over kubelet's DRA gRPC: MIG devices, MPS daemons, IMEX channels, CDI specs),
# nvdra-controller (places ComputeDomains on NVLink cliques, runs their IMEX daemons) and the
# IMEX daemon pods themselves. In a terminal the cluster stays up until Ctrl-C; without one (CI)
# the demo checks every sample, tears everything down and exits 0, or non-zero naming what failed.
set -euo pipefail
BUILD=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/$BUILD/bin"
work=$(mktemp -d /tmp/nv.XXXXXX)  # short: unix socket paths below it must fit 107 bytes
sim_pid="" ctl_pid=""
cleanup() {
  trap - EXIT INT TERM HUP
  for p in $ctl_pid $sim_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM HUP
started=${EPOCHREALTIME/./}
elapsed() { local d=$(((${EPOCHREALTIME/./} - started) / 100000)); printf '%3d.%ds' $((d / 10)) $((d % 10)); }
step() { echo; echo "\$ $*"; "$@"; }
source "$root/scripts/cluster-lib.sh"  # sa_kubeconfig, wait_for_agents, follow_demo_progress

"$bin/nvdra-sim" up --topology "$root/examples/topologies/demo.yaml" \
  --agent-binary "$bin/nvdra-agent" --root "$work/nodes" \
  --agent-service-account nvdra-system/nvdra-kubelet-plugin \
  --kubeconfig-out "$work/kubeconfig" >"$work/sim.out" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 100); do [ "$(wc -l <"$work/sim.out")" -ge 2 ] && break; sleep 0.05; done
if [ ! -s "$work/kubeconfig" ]; then
  echo "demo: nvdra-sim did not start"; cat "$work/sim.log"; exit 1
fi
export KUBECONFIG="$work/kubeconfig"
echo "== $(sed -n 2p "$work/sim.out")"
for _ in $(seq 50); do [ "$(kubectl get nodes -o name | wc -l)" -gt 1 ] && break; sleep 0.1; done
step kubectl get nodes -L nvidia.com/gpu.clique

# What an operator installs first: namespace, CRDs, DeviceClasses, RBAC per component.
step kubectl apply -k "$root/manifests/base"
# The controller runs as its service account (a real cluster mounts the same token).
sa_kubeconfig nvdra-controller "$work/controller.kubeconfig"
"$bin/nvdra-controller" --kubeconfig "$work/controller.kubeconfig" --leader-elect \
  --metrics-bind-address 127.0.0.1:0 --metrics-address-file "$work/controller-metrics" \
  >"$work/controller.log" 2>&1 &
ctl_pid=$!
echo "nvdra-controller started (log: $work/controller.log)"

# The agents start with the simulator and publish once their RBAC exists.
printf 'waiting for every node to publish its devices... '
echo "$(wait_for_agents)/$(kubectl get nodes -o name | wc -l) nodes"

step kubectl apply -f "$root/examples/demo/gpu-pod.yaml" -f "$root/examples/demo/mig-pod.yaml" \
  -f "$root/examples/demo/mps-pod.yaml" -f "$root/examples/demo/compute-domain-job.yaml"

# Progress as it happens: every change of a pod's phase or of the domain's status.
echo
echo "== progress (time since the demo started)"
follow_demo_progress 120 -A || true

step kubectl get pods -n nvdra-demo -o wide
step kubectl get resourceclaims -n nvdra-demo
step kubectl get computedomain -n nvdra-demo nvlink-pair \
  -o jsonpath='{.status.status}{"\n"}{range .status.nodes[*]}{.name}{"  clique "}{.cliqueID}{"  index "}{.index}{"  "}{.status}{"\n"}{end}'
echo
echo "\$ kubectl get resourceclaims -n nvdra-demo -o jsonpath=<devices>"
kubectl get resourceclaims -n nvdra-demo \
  -o jsonpath='{range .items[*]}{.metadata.name}{" -> "}{.status.allocation.devices.results[*].device}{" on "}{.status.allocation.nodeSelector.nodeSelectorTerms[0].matchFields[0].values[0]}{"\n"}{end}'
echo
echo "\$ ls <node>/var/run/cdi; cat <node>/var/log/nvdra-sim-tools.log   # what the agents did"
ls "$work"/nodes/*/var/run/cdi/*.json | sed "s|$work/nodes/||"
cat "$work"/nodes/*/var/log/nvdra-sim-tools.log 2>/dev/null || true

# The checks (also what CI relies on).
failed=""
for pod in gpu-pod mig-pod mps-pod; do
  [ "$(kubectl get pod -n nvdra-demo "$pod" -o jsonpath='{.status.phase}')" = Running ] || failed="$failed $pod"
done
for uid in $(kubectl get resourceclaims -n nvdra-demo -o jsonpath='{.items[*].metadata.uid}'); do
  ls "$work"/nodes/*/var/run/cdi/k8s.*.nvidia.com-claim_"$uid".json >/dev/null 2>&1 || failed="$failed cdi($uid)"
done
grep -q set_default_active_thread_percentage "$work"/nodes/*/var/log/nvdra-sim-tools.log || failed="$failed mps-daemon"
mig_device=$(kubectl get resourceclaims -n nvdra-demo -o jsonpath='{.items[?(@.metadata.annotations.resource\.kubernetes\.io/pod-claim-name=="mig")].status.allocation.devices.results[0].device}')
[[ "$mig_device" == gpu-*-mig-1g5gb-* ]] || failed="$failed mig-device($mig_device)"
workers=$(kubectl get pods -n nvdra-demo -l app=nvlink-pair -o jsonpath='{range .items[*]}{.status.phase}:{.spec.nodeName}{"\n"}{end}')
[ "$(grep -c '^Running:' <<<"$workers")" = 2 ] && [ "$(cut -d: -f2 <<<"$workers" | sort -u | wc -l)" = 2 ] ||
  failed="$failed nvlink-pair-workers($(tr '\n' ' ' <<<"$workers"))"
cd_status=$(kubectl get computedomain -n nvdra-demo nvlink-pair -o jsonpath='{.status.status} {.status.nodes[*].cliqueID}')
read -r st c1 c2 <<<"$cd_status"
[ "$st" = Ready ] && [ -n "$c1" ] && [ "$c1" = "$c2" ] || failed="$failed computedomain($cd_status)"
[ "$(find "$work/nodes" -path '*/nvidia-caps-imex-channels/channel*' | wc -l)" = 2 ] || failed="$failed imex-channels"
if grep -q "RBAC denied" "$work/sim.log"; then
  failed="$failed rbac($(grep -m1 -o 'User "[^"]*" cannot [a-z]* resource "[^"]*"' "$work/sim.log"))"
fi

if [ -n "$failed" ]; then
  echo; echo "demo: FAILED:$failed"
  echo "logs: sim $work/sim.log, controller $work/controller.log, agents $work/nodes/*/agent.log"
  [ -t 0 ] || tail -20 "$work/controller.log"
  exit 1
fi
echo
echo "demo: every sample reached its expected state in $(elapsed | tr -d ' ')."
if [ -t 0 ]; then
  echo "The cluster stays up. In another terminal:"
  echo "  export KUBECONFIG=$work/kubeconfig"
  echo "  kubectl get pods -A -o wide; kubectl get resourceclaims -A; kubectl get computedomains -A"
  echo "  curl -s http://$(cat "$work/controller-metrics")/metrics | grep nvdra_compute_domains"
  echo "Press Ctrl-C to stop."
  wait "$sim_pid" || true
fi
