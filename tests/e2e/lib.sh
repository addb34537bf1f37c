# Shared by the end-to-end tests (sourced): a work folder and the simulator stopped and removed on
# exit, check/contains counters, a summary that sets the exit status, run_sim, all_running,
# data_dir, NVIDIA's quickstart manifests with apply_manifest, install_base, start_controller,
# crash, holder, cd_field and rbac_denials, and (from scripts/cluster-lib.sh) sa_kubeconfig and
# wait_for_agents.
work=$(mktemp -d /tmp/nv.XXXXXX)  # short: unix socket paths below it must fit 107 bytes
sim_pid=""
bg_pids=()  # other processes a test starts (controllers), stopped on exit
pass=0
fail=0
cleanup() {
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  [ -n "${KEEP_WORK:-}" ] && echo "work folder kept: $work" || rm -rf "$work"
}
trap cleanup EXIT

# The cluster's state at the first failed check, for a failure seen only in CI: pods, claims,
# domains, the newest events and the simulator's warnings.
dump_state() {
  [ -n "${dumped:-}" ] || [ ! -s "$work/kubeconfig" ] && return
  dumped=1
  echo "--- state at the first failure ---"
  timeout 20 kubectl get pods,resourceclaims -A -o wide 2>&1 | head -40
  timeout 20 kubectl get computedomains -A 2>/dev/null | head -10
  timeout 20 kubectl get pods -A -o jsonpath='{range .items[?(@.status.phase!="Running")]}{.metadata.namespace}/{.metadata.name} {.metadata.uid} claims={.status.resourceClaimStatuses} conditions={.status.conditions}{"\n"}{end}' 2>&1 | head -10 | cut -c1-600
  timeout 20 kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -15
  grep '^[WE]' "$work/err" 2>/dev/null | tail -10 | cut -c1-300
  echo "now $(date -u +%H:%M:%S); node leases renewed at: $(timeout 10 kubectl get leases -n kube-node-lease -o jsonpath='{.items[*].spec.renewTime}' 2>&1 | tr ' ' '\n' | sort | tail -1)"
  # NVDRA_E2E_STACKS=1: every thread's stack of the simulator, for a hang.
  if [ -n "${NVDRA_E2E_STACKS:-}" ] && [ -n "$sim_pid" ]; then
    gdb -p "$sim_pid" -batch -ex 'thread apply all bt' >"$work/sim-stacks.txt" 2>&1
    echo "simulator stacks in $work/sim-stacks.txt"
  fi
  echo "---"
}
failed() { fail=$((fail + 1)); echo "FAIL $1"; dump_state; }
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then pass=$((pass + 1)); else failed "$1: want [$2] got [$3]"; fi
}
contains() {  # contains NAME NEEDLE HAYSTACK
  if [[ "$3" == *"$2"* ]]; then pass=$((pass + 1)); else failed "$1: [$2] not in [$3]"; fi
}
summary() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

# run_sim ARGS...: starts `nvdra-sim ARGS --kubeconfig-out $work/kubeconfig`, waits until it has
# printed the kubeconfig path (its first line) and points kubectl at it.
run_sim() {
  # Removed first: the background job truncates them only when it starts, and a previous run's
  # output must not pass for this one's.
  rm -f "$work/out" "$work/err"
  "$BIN/nvdra-sim" "$@" --kubeconfig-out "$work/kubeconfig" >"$work/out" 2>"$work/err" &
  sim_pid=$!
  for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
  if [ "$(head -1 "$work/out")" != "$work/kubeconfig" ]; then
    echo "first line is not the kubeconfig path"; cat "$work/out" "$work/err"; exit 1
  fi
  export KUBECONFIG="$work/kubeconfig"
}

# all_running NAMESPACE: prints "yes" once every pod of the namespace is Running (30 s), else
# "no: <pod>=<phase> …".
all_running() {
  for _ in $(seq 300); do
    local phases
    phases=$(kubectl get pods -n "$1" -o jsonpath='{.items[*].status.phase}')
    if [ -n "$phases" ] && [ -z "$(tr ' ' '\n' <<<"$phases" | grep -v '^Running$' || true)" ]; then
      echo yes; return
    fi
    sleep 0.1
  done
  echo "no: $(kubectl get pods -n "$1" -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase}:{.status.conditions[0].message} {end}')"
}

# data_dir SETTING (NVDRA_COMPAT_DIR, NVDRA_FIXTURES_DIR): the folder of data kept outside the
# repository, resolved by nvdra-test-data as the C++ tests resolve it (tests/data/test_data.h).
# Use it as `compat=$(data_dir NVDRA_COMPAT_DIR) || exit` before starting anything: without the
# data the script ends with 77, which ctest reports as skipped, or 1 under NVDRA_REQUIRE_DATA=1.
data_dir() { "$BIN/nvdra-test-data" "$1"; }

# NVIDIA's quickstart manifests that run on GPU nodes (relative to the compat quickstart folder).
quickstart_manifests="v1/gpu-test1 v1/gpu-test2 v1/gpu-test3 v1/gpu-test4 v1/gpu-test5 v1/gpu-test6 v1/gpu-test-mps gpu-test7 gpu-test8"

# apply_manifest FILE: kubectl-applies FILE unchanged and prints the namespace it creates.
apply_manifest() {
  local ns
  ns=$(kubectl apply -f "$1" -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
  [ -n "$ns" ] || ns=$(grep -m1 -A2 '^kind: Namespace' "$1" | sed -n 's/^ *name: *//p')
  echo "$ns"
}

# until_equal WANT CMD...: polls CMD until it prints WANT (for $WAIT_S seconds, default 10);
# prints its last output.
until_equal() {
  local want=$1 got; shift
  for _ in $(seq $((${WAIT_S:-10} * 10))); do got=$("$@"); [ "$got" = "$want" ] && break; sleep 0.1; done
  echo "$got"
}

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/cluster-lib.sh"  # sa_kubeconfig, wait_for_agents

# install_base: what manifests/base holds (namespace, CRDs, DeviceClasses, RBAC per component),
# applied through kubectl's kustomize exactly as an operator would.
install_base() {
  kubectl apply -k "$root/manifests/base" >/dev/null
}

# start_controller N: nvdra-controller replica N, as the Deployment runs it (its service account
# from $work/controller.kubeconfig, leader election); log $work/ctl-N.log, metrics address in
# $work/ctl-metrics-N, pid in ctl_pid[N].
declare -A ctl_pid
start_controller() {
  "$BIN/nvdra-controller" --kubeconfig "$work/controller.kubeconfig" --namespace nvdra-system \
    --leader-elect -v "${CTL_V:-1}" \
    --metrics-bind-address 127.0.0.1:0 --metrics-address-file "$work/ctl-metrics-$1" \
    >>"$work/ctl-$1.log" 2>&1 &
  ctl_pid[$1]=$!
  bg_pids+=($!)
}
crash() { kill -9 "$1"; wait "$1" 2>/dev/null || true; }  # SIGKILL, quietly reaped
holder() { kubectl -n nvdra-system get lease nvdra-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
cd_field() { kubectl get computedomain "$1" -n "${3:-default}" -o jsonpath="$2" 2>/dev/null; }  # NAME JSONPATH [NS]

# rbac_denials: requests the simulator refused for lack of a permission (none expected: every
# component's role must cover what it does).
rbac_denials() { grep -c "RBAC denied" "$work/err" || true; }
