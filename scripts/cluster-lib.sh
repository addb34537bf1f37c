# Sourced by scripts/demo.sh and tests/e2e/lib.sh: what running nvdra on nvdra-sim takes beyond
# kubectl itself. Uses the current KUBECONFIG.

# sa_kubeconfig NAME FILE: a kubeconfig (0600) acting as service account nvdra-system/NAME, so a
# process started with it has exactly the permissions manifests/base grants that component
# (a real cluster mounts the same token into the pod).
sa_kubeconfig() {
  local token
  token=$(kubectl create token -n nvdra-system "$1")
  (umask 077 && kubectl config view --raw --minify >"$2")
  KUBECONFIG="$2" kubectl config set-credentials "$1" --token="$token" >/dev/null
  KUBECONFIG="$2" kubectl config set-context --current --user="$1" >/dev/null
}

# wait_for_agents: waits (60 s) until every node's agent has published its ResourceSlices, as an
# operator waits for the plugin DaemonSet before submitting work; prints the number of nodes
# with slices.
wait_for_agents() {
  local want got
  want=$(kubectl get nodes -o name | wc -l)
  for _ in $(seq 600); do
    got=$(kubectl get resourceslices -o jsonpath='{.items[*].spec.nodeName}' | tr ' ' '\n' | sort -u | grep -c . || true)
    [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  echo "$got"
}
