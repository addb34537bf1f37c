#!/usr/bin/env bash
# Installs nvdra on a running real test cluster as an operator would (kubectl apply -k of
# manifests/deploy through the overlay beside this script) and waits until it serves: every
# node's agent Ready with its ResourceSlices published, the controller Deployment available with
# a leader. Before that it gives each node its simulated GPUs (nodes.yaml: node -> description)
# and the label the DaemonSet selects GPU nodes by, and pushes nvdra's image into the cluster.
#   install.sh K8S_STATE K8S_BIN NVDRA_IMAGE_ARCHIVE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=$1 k8s_bin=$2 archive=$3
export KUBECONFIG=$state/kubeconfig/admin.kubeconfig
say() { echo "install: $*" >&2; }

nodes=$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
for node in $nodes; do
  description=$(python3 - "$here/nodes.yaml" "$node" <<'PY'
import sys
# nodes.yaml: "<node>: <one-line description>"; a flat file, read without a YAML library.
for line in open(sys.argv[1]):
    name, _, rest = line.partition(":")
    if name.strip() == sys.argv[2] and not line.startswith("#"):
        print(rest.strip())
PY
)
  [ -n "$description" ] || { say "nodes.yaml has no GPUs for node $node"; exit 1; }
  mkdir -p "$state/nodes/$node/sim"
  # One line per key, as nvdra-sim writes node descriptions.
  { echo "# Written by tests/k8s/nvdra/install.sh: the simulated GPUs of node $node."
    echo "nodeName: $node"
    tr ',' '\n' <<<"$description" | sed 's/^ *//; s/=/: /'; } >"$state/nodes/$node/sim/node.yaml"
  kubectl label node "$node" nvidia.com/gpu.present=true --overwrite >/dev/null
done
say "image $(basename "$archive")"
"$k8s_bin/nvdra-k8s" import --state "$state" "$archive" >/dev/null
kubectl apply -k "$here" >/dev/null
kubectl -n nvdra-system rollout status daemonset/nvdra-kubelet-plugin --timeout=180s >&2
kubectl -n nvdra-system rollout status deployment/nvdra-controller --timeout=180s >&2
count=$(wc -w <<<"$nodes")
for driver in gpu.nvidia.com compute-domain.nvidia.com; do
  published=0
  for _ in $(seq 300); do
    published=$(kubectl get resourceslices --field-selector "spec.driver=$driver" \
      -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | grep -c . || true)
    [ "$published" -ge "$count" ] && break
    sleep 0.2
  done
  [ "$published" -ge "$count" ] || { say "$driver: $published of $count nodes published slices"; exit 1; }
done
for _ in $(seq 150); do
  [ -n "$(kubectl -n nvdra-system get lease nvdra-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" ] && break
  sleep 0.2
done
say "nvdra serves $count nodes"
