#!/usr/bin/env bash
# ComputeDomain time-to-Ready on nvdra-sim, everything real: an agent per node, the controller,
# an IMEX daemon (nvdra-agent compute-domain-daemon + nvdra-imex-sim) per node of the domain.
# For each size N: a domain of N nodes and a Job of N pods using its channel, on racks of 18 GB200
# nodes (one NVLink clique each). Reported: creation → domain Ready, creation → all pods Running;
# the baseline, in the same run, is the same Job without a ComputeDomain (creation → all Running),
# so the ratio is what the domain adds. The API server answers a client (token) beyond
# --client-qps requests per second with 429 + Retry-After, as API Priority and Fairness would;
# the controller keeps its default client limits (20 QPS, burst 40).
# Usage: bench_cd_ready.sh BIN_DIR [N...]   (default sizes: 4 18)
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR [N...]}
shift
sizes=("$@")
[ $# -eq 0 ] && sizes=(4 18)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
client_qps=${CLIENT_QPS:-100}
work=$(mktemp -d /tmp/nb.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
# until_true SECONDS CMD...: polls CMD (every 0.2 s) until it succeeds; fails after SECONDS.
until_true() {
  local end=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.2; done
}
running() {  # running NS LABEL N: N pods of the label Running
  [ "$(kubectl get pods -n "$1" -l "$2" -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Running$')" -ge "$3" ]
}
cd_ready() { [ "$(kubectl get computedomain "$1" -n "$2" -o jsonpath='{.status.status}')" = Ready ]; }

job() {  # job NAME NS N [CLAIM_TEMPLATE]
  local claims="" refs=""
  if [ -n "${4:-}" ]; then
    claims="resourceClaims: [{name: ch, resourceClaimTemplateName: $4}]"
    refs="resources: {claims: [{name: ch}]}"
  fi
  cat <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: $1, namespace: $2}
spec:
  parallelism: $3
  completions: $3
  template:
    metadata:
      labels: {bench: $1}
      annotations: {sim.nvdra.io/run-seconds: "-1"}
    spec:
      restartPolicy: Never
      $claims
      containers:
      - name: w
        image: busybox
        command: [sleep, infinity]
        $refs
EOF
}

printf '%-6s %-8s %12s %14s %14s %8s\n' pods racks "domain Ready" "pods Running" "baseline pods" ratio
for n in "${sizes[@]}"; do
  racks=$(((n + 17) / 18))
  topo="$work/topo-$n.yaml"
  { echo "name: bench-$n"; echo "racks:"
    for r in $(seq "$racks"); do echo "- {name: rack-$r, nodes: 18, gpusPerNode: 4, gpu: GB200}"; done; } >"$topo"
  rm -rf "$work/nodes"
  "$BIN/nvdra-sim" up --topology "$topo" --root "$work/nodes" --kubeconfig-out "$work/kc" \
    --fault-client-qps "$client_qps" >"$work/sim.out" 2>"$work/sim.err" &
  sim=$!
  pids+=("$sim")
  until_true 30 test -s "$work/sim.out"
  export KUBECONFIG="$work/kc"
  until_true 120 bash -c "[ \$(kubectl get resourceslices -o name | wc -l) -ge $((racks * 18 * 2)) ]"
  kubectl apply -k "$root/manifests/base" >/dev/null
  kubectl create namespace bench >/dev/null
  "$BIN/nvdra-controller" --kubeconfig "$work/kc" --namespace nvdra-system >"$work/ctl.log" 2>&1 &
  ctl=$!
  pids+=("$ctl")

  # Baseline: the same pods without a domain.
  t0=$(now)
  job plain bench "$n" | kubectl apply -f - >/dev/null
  until_true 600 running bench bench=plain "$n"
  base=$(since "$t0")
  kubectl delete job plain -n bench --wait=true >/dev/null
  until_true 120 bash -c "[ -z \"\$(kubectl get pods -n bench -o name)\" ]"

  t0=$(now)
  kubectl apply -f - >/dev/null <<EOF
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: cd, namespace: bench}
spec:
  numNodes: $n
  channel: {resourceClaimTemplate: {name: cd-channel}}
EOF
  job cd bench "$n" cd-channel | kubectl apply -f - >/dev/null
  ready="timeout" pods="timeout"
  if until_true 900 cd_ready cd bench; then ready="$(since "$t0")s"; fi
  if until_true 300 running bench bench=cd "$n"; then pods="$(since "$t0")s"; fi
  ratio=-
  [ "$pods" != timeout ] && ratio=$(awk -v a="${pods%s}" -v b="$base" 'BEGIN { printf "%.1fx", a / b }')
  printf '%-6s %-8s %12s %14s %13ss %8s\n' "$n" "$racks" "$ready" "$pods" "$base" "$ratio"
  kill "$ctl" "$sim" 2>/dev/null || true
  wait "$ctl" "$sim" 2>/dev/null || true
done
