#!/usr/bin/env bash
# nvdra on the real test cluster beside nvdra-sim, in the same run: apply -> every pod Running for
# NVIDIA's gpu-test1 (two pods, a GPU each) and for nvdra's two-node ComputeDomain Job (with the
# time to the domain's Ready), REPEAT times each (median reported), and the NodePrepareResources
# latency kubelet itself reports on the real cluster (its dra_grpc_operations_duration_seconds
# histogram, per driver). The real cluster is tests/k8s (4 nodes, nvdra installed from its
# manifests); nvdra-sim runs the demo topology with an agent per node and the controller.
# Usage: bench_real_vs_sim.sh BUILD_BIN K8S_BIN [REPEAT]   (needs root; make k8s-images k8s-nvdra-image)
set -euo pipefail
BIN=$(realpath "$1")
K8S_BIN=$(realpath "$2")
repeat=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
images=$(cd "$K8S_BIN/../images" && pwd)
compat=$("$BIN/nvdra-test-data" NVDRA_COMPAT_DIR)
state=/tmp/nvdra-k8s-bench
work=$(mktemp -d /tmp/nb.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  "$K8S_BIN/nvdra-k8s" down --state "$state" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
source "$root/scripts/cluster-lib.sh"

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
all_running() {  # NS N
  [ "$(kubectl get pods -n "$1" -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Running$')" -ge "$2" ]
}
wait_for() {  # SECONDS CMD...
  local end=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.1; done
}
median() { tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

# measure LABEL: runs both workloads REPEAT times on the cluster KUBECONFIG points at; prints
# "LABEL gpu_test1_s cd_ready_s cd_running_s" (medians).
measure() {
  local t gpu=() ready=() running=()
  for _ in $(seq "$repeat"); do
    t=$(now)
    kubectl apply -f "$compat/quickstart/v1/gpu-test1.yaml" >/dev/null
    wait_for 120 all_running gpu-test1 2
    gpu+=("$(since "$t")")
    kubectl delete namespace gpu-test1 --wait=true --timeout=120s >/dev/null
    kubectl create namespace nvdra-demo >/dev/null
    t=$(now)
    kubectl apply -f "$root/examples/demo/compute-domain-job.yaml" >/dev/null
    wait_for 180 sh -c '[ "$(kubectl get computedomain -n nvdra-demo nvlink-pair -o jsonpath={.status.status})" = Ready ]'
    ready+=("$(since "$t")")
    wait_for 180 all_running nvdra-demo 2
    running+=("$(since "$t")")
    kubectl delete namespace nvdra-demo --wait=true --timeout=120s >/dev/null
  done
  echo "$1 $(echo "${gpu[*]}" | median) $(echo "${ready[*]}" | median) $(echo "${running[*]}" | median)"
}

echo "== nvdra-sim (demo topology, agents and controller)" >&2
"$BIN/nvdra-sim" up --topology "$root/examples/topologies/demo.yaml" --agent-binary "$BIN/nvdra-agent" \
  --root "$work/nodes" --agent-service-account nvdra-system/nvdra-kubelet-plugin \
  --kubeconfig-out "$work/sim.kubeconfig" >"$work/sim.out" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.kubeconfig" ] && break; sleep 0.1; done
export KUBECONFIG=$work/sim.kubeconfig
kubectl apply -k "$root/manifests/base" >/dev/null
sa_kubeconfig nvdra-controller "$work/controller.kubeconfig"
"$BIN/nvdra-controller" --kubeconfig "$work/controller.kubeconfig" --leader-elect >"$work/controller.log" 2>&1 &
pids+=($!)
wait_for_agents >/dev/null
sim=$(measure nvdra-sim)
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true; pids=()

echo "== the real cluster (4 nodes, nvdra installed from manifests/deploy)" >&2
t=$(now)
export KUBECONFIG
KUBECONFIG=$("$K8S_BIN/nvdra-k8s" up --detach --state "$state" --nodes 4 \
  --image "$images/pause.tar" --image "$images/test.tar")
start_s=$(since "$t")
t=$(now)
"$root/tests/k8s/nvdra/install.sh" "$state" "$K8S_BIN" "$images/nvdra.tar" 2>/dev/null
install_s=$(since "$t")
real=$(measure real-cluster)
# kubelet's own view of NodePrepareResources: the gRPC call's duration, per driver, all nodes.
prepare=$(for n in $(kubectl get nodes -o name); do kubectl get --raw "/api/v1/nodes/${n#node/}/proxy/metrics"; done |
  awk '/^dra_grpc_operations_duration_seconds_(sum|count)\{/ && /NodePrepareResources/ && /grpc_status_code="OK"/ {
         match($0, /driver_name="[^"]*"/); d = substr($0, RSTART + 13, RLENGTH - 14)
         if ($0 ~ /_sum\{/) s[d] += $NF; else c[d] += $NF }
       END { for (d in c) printf "%s %d %.1f\n", d, c[d], 1000 * s[d] / c[d] }' | sort)

echo
echo "| run | gpu-test1 apply -> 2 pods Running | two-node domain: apply -> Ready | apply -> 2 workers Running |"
echo "|---|---|---|---|"
for row in "$sim" "$real"; do
  read -r label gpu ready running <<<"$row"
  echo "| $label | $gpu s | $ready s | $running s |"
done
echo
echo "real cluster: start to 4 nodes Ready ${start_s} s, nvdra install to serving ${install_s} s"
echo "kubelet's NodePrepareResources (dra_grpc_operations_duration_seconds, OK calls, all nodes):"
while read -r driver count ms; do
  [ -n "$driver" ] && echo "  $driver: $count calls, mean $ms ms"
done <<<"$prepare"
echo "median of $repeat runs each"
