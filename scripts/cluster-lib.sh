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

# follow_demo_progress ROUNDS KUBECTL_POD_ARGS...: prints every change of a pod's phase and of
# the demo domain's status, in half-second rounds, until the demo's samples are where they should
# be (at most ROUNDS rounds). KUBECTL_POD_ARGS choose the pods (-A names them namespace/name).
# Uses the caller's elapsed().
follow_demo_progress() {
  local rounds=$1 name='{.metadata.name}' cd_state
  shift
  [ "$1" = -A ] && name='{.metadata.namespace}/{.metadata.name}'
  local -A seen
  for _ in $(seq "$rounds"); do
    while read -r pod phase node; do
      [ -n "$pod" ] || continue
      if [ "${seen[$pod]:-}" != "$phase" ]; then
        seen[$pod]=$phase
        echo "$(elapsed)  pod/$pod: $phase${node:+ on $node}"
      fi
    done < <(kubectl get pods "$@" -o jsonpath="{range .items[*]}$name{\" \"}{.status.phase}{\" \"}{.spec.nodeName}{\"\\n\"}{end}" 2>/dev/null)
    cd_state=$(kubectl get computedomain -n nvdra-demo nvlink-pair \
      -o jsonpath='{.status.status} ({range .status.nodes[*]}{.name}:{.status} {end})' 2>/dev/null || true)
    if [ "${seen[cd]:-}" != "$cd_state" ]; then
      seen[cd]=$cd_state
      echo "$(elapsed)  computedomain/nvlink-pair: $cd_state"
    fi
    # The four samples (GPU, MIG, MPS pods, both workers) Running and the domain Ready.
    [ "$(kubectl get pods -n nvdra-demo --no-headers 2>/dev/null | grep -c ' Running ')" -ge 5 ] &&
      [ "$(kubectl get computedomain -n nvdra-demo nvlink-pair -o jsonpath='{.status.status}')" = Ready ] &&
      return 0
    sleep 0.5
  done
  return 1
}

