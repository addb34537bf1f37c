#!/usr/bin/env bash
# make cluster-nvdra: the real test cluster (tests/k8s) with nvdra installed from its manifests
# (tests/k8s/nvdra/install.sh: the locally built image, the simulated GPUs of nodes.yaml) and its
# agents' slices published. Like make cluster it prints the admin kubeconfig path alone on its
# first line (everything else goes to stderr) and runs until SIGINT/SIGTERM, then removes the
# cluster.
#   cluster-nvdra.sh BUILD
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k8s=$root/${1:-build}/k8s
state=$k8s/state
sleeper=""
stop() {
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
  "$k8s/bin/nvdra-k8s" down --state "$state" >&2 || true
}
trap stop EXIT
trap 'exit 0' INT TERM
kubeconfig=$("$k8s/bin/nvdra-k8s" up --detach --state "$state" --nodes 4 \
  --image "$k8s/images/pause.tar" --image "$k8s/images/test.tar")
"$root/tests/k8s/nvdra/install.sh" "$state" "$k8s/bin" "$k8s/images/nvdra.tar"
echo "$kubeconfig"
echo "nvdra runs on the real cluster; KUBECONFIG=$kubeconfig. Ctrl-C stops it." >&2
sleep infinity &
sleeper=$!
wait "$sleeper"
