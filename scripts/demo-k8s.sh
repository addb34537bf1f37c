#!/usr/bin/env bash
# make demo-k8s: the samples of make demo (examples/demo: a whole GPU, a MIG slice, an MPS-shared
# GPU, a two-node job in a ComputeDomain) on the real test cluster: kube-apiserver,
# kube-scheduler, kubelets with containerd and runc in their own network namespaces, nvdra
# installed from manifests/deploy with its own image and simulated GPUs backed by device nodes.
# It prints each pod's and the domain's progress, then what every container was given. In a
# terminal the cluster stays up until Ctrl-C; without one (CI) it checks every sample, tears down
# and exits 0, or non-zero naming what failed.
#   demo-k8s.sh BUILD
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/cluster-lib.sh"  # follow_demo_progress
k8s=$root/${1:-build}/k8s
state=$k8s/demo
trap '"$k8s/bin/nvdra-k8s" down --state "$state" >/dev/null 2>&1 || true' EXIT
trap 'echo; echo "demo-k8s: stopping"; exit 0' INT TERM HUP
started=${EPOCHREALTIME/./}
elapsed() { local d=$(((${EPOCHREALTIME/./} - started) / 100000)); printf '%3d.%ds' $((d / 10)) $((d % 10)); }
step() { echo; echo "\$ $*"; "$@"; }

echo "== starting the real cluster (4 nodes) in $state"
export KUBECONFIG
KUBECONFIG=$("$k8s/bin/nvdra-k8s" up --detach --state "$state" --nodes 4 \
  --image "$k8s/images/pause.tar" --image "$k8s/images/test.tar")
echo "$(elapsed)  cluster Ready"
"$root/tests/k8s/nvdra/install.sh" "$state" "$k8s/bin" "$k8s/images/nvdra.tar" 2>&1 | grep '^install:' || true
echo "$(elapsed)  nvdra installed"
step kubectl get nodes -o wide
step kubectl get pods -n nvdra-system -o wide
step kubectl apply -f "$root/examples/demo/gpu-pod.yaml" -f "$root/examples/demo/mig-pod.yaml" \
  -f "$root/examples/demo/mps-pod.yaml" -f "$root/examples/demo/compute-domain-job.yaml"

echo
echo "== progress (time since the demo started)"
follow_demo_progress 360 -n nvdra-demo || true

step kubectl get pods -n nvdra-demo -o wide
step kubectl get resourceclaims -n nvdra-demo
echo
echo "== what each container was given (nvidia-smi stand-in inside the container)"
for pod in $(kubectl get pods -n nvdra-demo -o jsonpath='{.items[*].metadata.name}'); do
  for ctr in $(kubectl get pod -n nvdra-demo "$pod" -o jsonpath='{.spec.containers[*].name}'); do
    echo "-- $pod/$ctr:"
    kubectl exec -n nvdra-demo "$pod" -c "$ctr" -- sh -c 'nvidia-smi 2>&1 | sed "s/^/   /"' || true
  done
done

failed=""
for pod in gpu-pod mig-pod mps-pod; do
  [ "$(kubectl get pod -n nvdra-demo "$pod" -o jsonpath='{.status.phase}')" = Running ] || failed="$failed $pod"
done
injected=$(python3 "$root/tests/e2e/k8s_injected.py" nvdra-demo 2>&1)
[ "$injected" = ok ] || failed="$failed devices($injected)"
workers=$(kubectl get pods -n nvdra-demo -l app=nvlink-pair -o jsonpath='{range .items[*]}{.status.phase}:{.spec.nodeName}{"\n"}{end}')
[ "$(grep -c '^Running:' <<<"$workers")" = 2 ] && [ "$(cut -d: -f2 <<<"$workers" | sort -u | wc -l)" = 2 ] ||
  failed="$failed nvlink-pair-workers($(tr '\n' ' ' <<<"$workers"))"
[ "$(kubectl get computedomain -n nvdra-demo nvlink-pair -o jsonpath='{.status.status}')" = Ready ] ||
  failed="$failed computedomain"
if [ -n "$failed" ]; then
  echo; echo "demo-k8s: FAILED:$failed"
  echo "logs: $state/logs (cluster), kubectl logs -n nvdra-system (nvdra)"
  exit 1
fi
echo
echo "demo-k8s: every sample reached its expected state on the real cluster in $(elapsed | tr -d ' ')."
if [ -t 0 ]; then
  echo "The cluster stays up. In another terminal:"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  kubectl get pods -A -o wide; kubectl get resourceclaims -A; kubectl get computedomains -A"
  echo "Press Ctrl-C to stop."
  sleep infinity & wait $!
fi
