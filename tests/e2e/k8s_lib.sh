# Shared by the tests that run on the real test cluster (sourced after lib.sh): the cluster's
# state folder and binaries, kubectl pointed at its admin kubeconfig, and helpers.
#   K8S_STATE  the state folder of the cluster the ctest fixture k8s.cluster_up started
#   K8S_BIN    the folder with nvdra-k8s and the cluster's programs
K8S_STATE=${K8S_STATE:-/tmp/nvdra-k8s-test}
K8S_BIN=${K8S_BIN:?K8S_BIN must name build/k8s/bin}
export KUBECONFIG="$K8S_STATE/kubeconfig/admin.kubeconfig"
if ! kubectl get --raw /readyz >/dev/null 2>&1; then
  echo "no real test cluster answers at $KUBECONFIG (the fixture k8s.cluster_up starts it: ctest -R k8s)"
  exit 1
fi
ln -sf "$KUBECONFIG" "$work/kubeconfig"  # dump_state prints the cluster's state on a failure

k8s_ctl() { "$K8S_BIN/nvdra-k8s" ctl --state "$K8S_STATE" "$@"; }

# node_ready NODE: the status of the node's Ready condition (True, False, Unknown).
node_ready() {
  kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null
}

# wait_pod_phase NS POD PHASE [SECONDS]: waits until the pod reaches PHASE; prints the last phase.
wait_pod_phase() {
  local phase=""
  for _ in $(seq $((${4:-60} * 5))); do
    phase=$(kubectl get pod -n "$1" "$2" -o jsonpath='{.status.phase}' 2>/dev/null)
    [ "$phase" = "$3" ] && break
    sleep 0.2
  done
  echo "$phase"
}

# node_dir NODE: the node's folder as the host sees it (the node itself sees it at /run/nvdra-k8s/node).
node_dir() { echo "$K8S_STATE/nodes/$1"; }
