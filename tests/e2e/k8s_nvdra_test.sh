#!/usr/bin/env bash
# nvdra on the real cluster (installed by the fixture k8s.nvdra_install from manifests/deploy):
# NVIDIA's demo manifests, unchanged, allocated by kube-scheduler, prepared through kubelet and
# injected by containerd. Checked from inside the containers (every container sees exactly the
# GPUs and MIG capabilities its claims were allocated, k8s_injected.py; shared claims the same
# GPU; MPS containers the daemon's pipe folder; channel pods their IMEX channels), then that
# deleting each leaves no claim, CDI spec, checkpoint entry, MIG or channel device node, domain
# label, DaemonSet or claim template behind. Then nvdra's two-node ComputeDomain Job.
# Usage: k8s_nvdra_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
source "$here/k8s_lib.sh"
compat=$(data_dir NVDRA_COMPAT_DIR) || exit

# What nvdra keeps on the nodes (host view of every node's folder).
cdi_specs() { find "$K8S_STATE"/nodes/*/cdi/dynamic -name '*.json' 2>/dev/null | wc -l; }
checkpoint_claims() {
  python3 - "$K8S_STATE"/nodes/*/kubelet/plugins/*/nvdra-checkpoint.json <<'PY'
import json, sys
n = 0
for path in sys.argv[1:]:
    lines = open(path).read().splitlines()
    n += len(json.loads(lines[1]).get("claims", {})) if len(lines) > 1 else 0
print(n)
PY
}
mig_nodes() { find "$K8S_STATE"/nodes/*/sim/dev/nvidia-caps -type c 2>/dev/null | wc -l; }
channel_nodes() { find "$K8S_STATE"/nodes/*/sim/dev/nvidia-caps-imex-channels -type c 2>/dev/null | wc -l; }
domain_labels() { kubectl get nodes -l resource.nvidia.com/computeDomain -o name | wc -l; }
daemon_sets() { kubectl get daemonsets -n nvdra-system -o name | grep -c computedomain-daemon || true; }

# running NS [SECONDS]: "yes" once every pod of NS is Running, else what each pod is doing.
running() {
  local phases
  for _ in $(seq $((${2:-120} * 5))); do
    phases=$(kubectl get pods -n "$1" -o jsonpath='{.items[*].status.phase}')
    if [ -n "$phases" ] && [ -z "$(tr ' ' '\n' <<<"$phases" | grep -v '^Running$' || true)" ]; then
      echo yes
      return
    fi
    sleep 0.2
  done
  echo "no: $(kubectl get pods -n "$1" -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase} {end}')"
}

# gone NS: deletes the namespace and checks that nothing of its claims is left on the nodes.
gone() {
  local m=$1 ns=$2
  kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null
  check "$m: claims gone" 0 "$(kubectl get resourceclaims -A --no-headers 2>/dev/null | grep -c "^$ns " || true)"
  check "$m: CDI specs removed" 0 "$(WAIT_S=30 until_equal 0 cdi_specs)"
  check "$m: checkpoints empty" 0 "$(WAIT_S=30 until_equal 0 checkpoint_claims)"
  check "$m: MIG device nodes removed" 0 "$(WAIT_S=30 until_equal 0 mig_nodes)"
}

# exec_in NS POD CONTAINER CMD...
# kubectl's own stderr (websocket client logs) goes to a file: checks compare the container's output.
exec_in() { kubectl exec -n "$1" "$2" -c "$3" -- "${@:4}" 2>>"$work/exec.err"; }
minors() { exec_in "$@" sh -c 'ls /dev | grep -E "^nvidia[0-9]+$" | sort | xargs'; }
node_of() { kubectl get pod -n "$1" "$2" -o jsonpath='{.spec.nodeName}'; }

echo "== NVIDIA's quickstart manifests (resource.k8s.io/v1 and v1beta1)"
for version in v1 v1beta1; do
  for m in gpu-test1 gpu-test2 gpu-test3 gpu-test4 gpu-test5 gpu-test6 gpu-test-mps; do
    file=$compat/quickstart/$version/$m.yaml
    [ -f "$file" ] || continue
    ns=$(apply_manifest "$file")
    check "$version/$m runs" yes "$(running "$ns")"
    check "$version/$m: containers see exactly their devices" ok "$(python3 "$here/k8s_injected.py" "$ns")"
    case $m in
      gpu-test1)  # two pods, a claim each: different GPUs
        a="$(node_of "$ns" pod1):$(minors "$ns" pod1 ctr)" b="$(node_of "$ns" pod2):$(minors "$ns" pod2 ctr)"
        check "$version/$m: different GPUs" different "$([ "$a" != "$b" ] && echo different || echo "both $a")" ;;
      gpu-test2)  # two containers, one claim: the same GPU
        check "$version/$m: one GPU for both containers" "$(minors "$ns" pod ctr0)" "$(minors "$ns" pod ctr1)" ;;
      gpu-test3)  # two pods, one claim: the same GPU on the same node
        check "$version/$m: one GPU for both pods" "$(node_of "$ns" pod1):$(minors "$ns" pod1 ctr)" \
          "$(node_of "$ns" pod2):$(minors "$ns" pod2 ctr)" ;;
      gpu-test4)
        check "$version/$m: MIG capability nodes on the node" \
          "$(kubectl get resourceclaims -n "$ns" -o jsonpath='{.items[*].status.allocation.devices.results[*].device}' | wc -w)" \
          "$(($(mig_nodes) / 2))" ;;
      gpu-test-mps)
        contains "$version/$m: the MPS daemon's pipe folder" control "$(exec_in "$ns" test-pod mps-ctr0 sh -c 'ls "$CUDA_MPS_PIPE_DIRECTORY"')" ;;
    esac
    gone "$version/$m" "$ns"
  done
done
for m in gpu-test7 gpu-test8; do
  ns=$(apply_manifest "$compat/quickstart/$m.yaml")
  check "$m runs" yes "$(running "$ns")"
  check "$m: containers see exactly their devices" ok "$(python3 "$here/k8s_injected.py" "$ns")"
  gone "$m" "$ns"
done

echo "== IMEX channels"
for m in channel-injection channel-injection-all; do
  file=$compat/imex/$m.yaml
  kubectl apply -f "$file" >/dev/null
  name=$(kubectl get -f "$file" -o jsonpath='{range .items[?(@.kind=="Pod")]}{.metadata.name}{end}')
  cd_name=$(kubectl get -f "$file" -o jsonpath='{range .items[?(@.kind=="ComputeDomain")]}{.metadata.name}{end}')
  check "$m runs" Running "$(wait_pod_phase default "$name" Running 120)"
  want=1; [ $m = channel-injection-all ] && want=2048
  check "$m: channels in the container" "$want" \
    "$(kubectl exec "$name" -- sh -c 'ls /dev/nvidia-caps-imex-channels | wc -l' 2>>"$work/exec.err")"
  check "$m: domain Ready" Ready "$(cd_field "$cd_name" '{.status.status}')"
  check "$m: the IMEX daemons run the controller's image" \
    "$(kubectl get deployment -n nvdra-system nvdra-controller -o jsonpath='{.spec.template.spec.containers[0].image}')" \
    "$(kubectl get daemonsets -n nvdra-system -o jsonpath='{.items[?(@.metadata.name!="nvdra-kubelet-plugin")].spec.template.spec.containers[0].image}')"
  kubectl delete -f "$file" --wait=true --timeout=120s >/dev/null
  check "$m: CDI specs removed" 0 "$(WAIT_S=30 until_equal 0 cdi_specs)"
  check "$m: channel device nodes removed" 0 "$(WAIT_S=30 until_equal 0 channel_nodes)"
  check "$m: domain labels removed" 0 "$(WAIT_S=30 until_equal 0 domain_labels)"
  check "$m: IMEX DaemonSet removed" 0 "$(WAIT_S=30 until_equal 0 daemon_sets)"
  check "$m: checkpoints empty" 0 "$(WAIT_S=30 until_equal 0 checkpoint_claims)"
done

echo "== a two-node ComputeDomain Job"
kubectl create namespace nvdra-demo >/dev/null
kubectl apply -f "$root/examples/demo/compute-domain-job.yaml" >/dev/null
check "the Job's workers run" yes "$(running nvdra-demo 180)"
WAIT_S=60 until_equal Ready cd_field nvlink-pair '{.status.status}' nvdra-demo >/dev/null
check "domain Ready" Ready "$(cd_field nvlink-pair '{.status.status}' nvdra-demo)"
check "domain with both nodes" 2 "$(cd_field nvlink-pair '{.status.nodes[*].name}' nvdra-demo | wc -w)"
nodes=$(kubectl get pods -n nvdra-demo -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u)
check "workers on two nodes" 2 "$(wc -l <<<"$nodes")"
cliques=$(for n in $nodes; do
  kubectl get resourceslices --field-selector "spec.nodeName=$n,spec.driver=compute-domain.nvidia.com" \
    -o jsonpath='{.items[0].spec.devices[0].attributes.cliqueID.string}'; echo; done | sort -u)
check "in one NVLink clique" 1 "$(grep -c . <<<"$cliques")"
for p in $(kubectl get pods -n nvdra-demo -o name); do
  contains "$p sees the channel" channel0 "$(kubectl logs -n nvdra-demo "$p" 2>&1)"
done
check "Job: containers see exactly their GPUs" ok "$(python3 "$here/k8s_injected.py" nvdra-demo)"
kubectl delete namespace nvdra-demo --wait=true --timeout=120s >/dev/null
check "Job: domain labels removed" 0 "$(WAIT_S=30 until_equal 0 domain_labels)"
check "Job: IMEX DaemonSet removed" 0 "$(WAIT_S=30 until_equal 0 daemon_sets)"
check "Job: claim templates removed" 0 "$(kubectl get resourceclaimtemplates -A --no-headers 2>/dev/null | grep -c computedomain || true)"
check "Job: CDI specs removed" 0 "$(WAIT_S=30 until_equal 0 cdi_specs)"
check "Job: checkpoints empty" 0 "$(WAIT_S=30 until_equal 0 checkpoint_claims)"
summary
