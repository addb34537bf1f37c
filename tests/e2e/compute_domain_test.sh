#!/usr/bin/env bash
# ComputeDomains end to end: nvdra-sim with an agent per node, two nvdra-controller replicas with
# leader election, IMEX daemons run for real (nvdra-agent compute-domain-daemon + nvdra-imex-sim).
# NVIDIA's ComputeDomain manifests, unchanged, reach Ready and their pods run; deleting them leaves
# no object, label, channel or CDI spec behind; bad input gets a condition and an Event; the
# standby takes over within 20 s of a SIGKILL; a controller restarted after objects were orphaned
# removes them. Usage: compute_domain_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"
compat=$(data_dir NVDRA_COMPAT_DIR) || exit
imex="$compat/imex"

run_sim up --topology "$root/examples/topologies/demo.yaml" --root "$work/nodes" \
  --agent-service-account nvdra-system/nvdra-kubelet-plugin
install_base
kubectl apply -f "$here/fixtures/mpijob-crd.yaml" >/dev/null
sa_kubeconfig nvdra-controller "$work/controller.kubeconfig"
check "every agent published its devices" "12" "$(wait_for_agents)"

leftovers() {  # everything a deleted domain and its workload must not leave behind
  echo "pods=$(kubectl get pods -n default -o name | wc -l)" \
    "claims=$(kubectl get resourceclaims -A -o name | wc -l)" \
    "rct=$(kubectl get resourceclaimtemplates -A -l resource.nvidia.com/computeDomain -o name | wc -l)" \
    "ds=$(kubectl get daemonsets -A -o name | wc -l)" \
    "daemons=$(kubectl get pods -n nvdra-system -o name | wc -l)" \
    "labels=$(kubectl get nodes -l resource.nvidia.com/computeDomain -o name | wc -l)" \
    "cdi=$(find "$work/nodes" -path '*/var/run/cdi/*.json' | wc -l)" \
    "channels=$(find "$work/nodes" -path '*/nvidia-caps-imex-channels/channel*' | wc -l)"
}
clean="pods=0 claims=0 rct=0 ds=0 daemons=0 labels=0 cdi=0 channels=0"

start_controller 1
start_controller 2
WAIT_S=60  # generous: CI machines are busy; waits end as soon as the state is reached
check "one replica leads" "1" "$(until_equal 1 bash -c "kubectl -n nvdra-system get lease nvdra-controller -o name 2>/dev/null | wc -l")"
leader=$(holder)
contains "the leader is a replica (<host>-<uuid>)" "$(hostname)-" "$(cat "$work"/ctl-*.log | grep -o 'leader election: [^ ]* became' | head -1)"

# --- channel-injection: one node, one channel ---
kubectl apply -f "$imex/channel-injection.yaml" >/dev/null
check "channel-injection: Ready" "Ready" "$(until_equal Ready cd_field imex-channel-injection '{.status.status}')"
check "channel-injection: pod Running" "yes" "$(all_running default)"
check "channel-injection: one node, index 0" "1 0" \
  "$(cd_field imex-channel-injection '{.status.nodes[*].name}' | wc -w) $(cd_field imex-channel-injection '{.status.nodes[0].index}')"
clique=$(cd_field imex-channel-injection '{.status.nodes[0].cliqueID}')
check "channel-injection: placed on the node's clique" "$clique" \
  "$(cd_field imex-channel-injection '{.status.placement.cliques[0]}')"
node=$(kubectl get pod imex-channel-injection -o jsonpath='{.spec.nodeName}')
check "channel-injection: workload on a node of that clique" "$clique" \
  "$(kubectl get resourceslices --field-selector spec.driver=compute-domain.nvidia.com,spec.nodeName="$node" -o jsonpath='{.items[0].spec.devices[0].attributes.cliqueID.string}')"
contains "workload template narrowed to the clique" "$clique" \
  "$(kubectl get resourceclaimtemplate imex-channel-0 -o jsonpath='{.spec.spec.devices.requests[0].exactly.selectors[0].cel.expression}')"
check "workload template owned by the domain" "ComputeDomain" \
  "$(kubectl get resourceclaimtemplate imex-channel-0 -o jsonpath='{.metadata.ownerReferences[0].kind}')"
uid=$(cd_field imex-channel-injection '{.metadata.uid}')
check "finalizer" "resource.nvidia.com/computeDomain" "$(cd_field imex-channel-injection '{.metadata.finalizers[0]}')"
check "node labelled for the domain" "$uid" \
  "$(kubectl get node "$node" -o jsonpath='{.metadata.labels.resource\.nvidia\.com/computeDomain}')"
check "one channel node injected" "1" \
  "$(grep -o 'nvidia-caps-imex-channels/channel[0-9]*' "$work"/nodes/"$node"/var/run/cdi/*.json | sort -u | wc -l)"
daemon_root=$(ls -d "$work"/nodes/"$node"/containers/*/compute-domain-daemon)
ip=$(cd_field imex-channel-injection '{.status.nodes[0].ipAddress}')
contains "daemon maps its peer name to its pod IP" "$(printf '%s\tcompute-domain-daemon-0000' "$ip")" \
  "$(cat "$daemon_root/etc/hosts")"
contains "IMEX config binds the pod IP" "BIND_INTERFACE_IP=$ip" "$(cat "$daemon_root/imexd/imexd.cfg")"
contains "IMEX stand-in ready" "READY" "$(cat "$daemon_root.log")"
check "Ready condition" "True" \
  "$(cd_field imex-channel-injection '{.status.conditions[?(@.type=="Ready")].status}')"
kubectl delete -f "$imex/channel-injection.yaml" --wait=false >/dev/null
check "channel-injection: deleted" "0" "$(until_equal 0 bash -c 'kubectl get computedomains -o name | wc -l')"
check "channel-injection: nothing left" "$clean" "$(until_equal "$clean" leftovers)"

# --- channel-injection-all: allocationMode All injects every channel ---
kubectl apply -f "$imex/channel-injection-all.yaml" >/dev/null
check "channel-injection-all: Ready" "Ready" "$(until_equal Ready cd_field imex-channel-injection-all '{.status.status}')"
check "channel-injection-all: pod Running" "yes" "$(all_running default)"
node=$(kubectl get pod imex-channel-injection-all -o jsonpath='{.spec.nodeName}')
check "all 2048 channels injected" "2048" \
  "$(grep -o 'nvidia-caps-imex-channels/channel[0-9]*' "$work"/nodes/"$node"/var/run/cdi/*.json | sort -u | wc -l)"
kubectl delete -f "$imex/channel-injection-all.yaml" --wait=false >/dev/null
check "channel-injection-all: nothing left" "$clean" "$(until_equal "$clean" leftovers)"

# --- nvbandwidth MPIJobs: 2 + 2 nodes at once, then 4 nodes ---
mpijob_done() { kubectl get mpijob "$1" -o jsonpath='{.status.conditions[?(@.type=="Succeeded")].status}' 2>/dev/null; }
ever_ready() {  # polls until the domain is Ready with N nodes in one clique; prints what it saw
  local got
  for _ in $(seq 300); do
    got="$(cd_field "$1" '{.status.status}') $(cd_field "$1" '{.status.nodes[*].cliqueID}' | tr ' ' '\n' | sort -u | wc -l)x$(cd_field "$1" '{.status.nodes[*].name}' | wc -w)"
    [ "$got" = "Ready 1x$2" ] && break
    sleep 0.1
  done
  echo "$got"
}
kubectl apply -f "$imex/nvbandwidth-test-job-1.yaml" -f "$imex/nvbandwidth-test-job-2.yaml" >/dev/null
check "nvbandwidth-1: Ready on 2 nodes of one clique" "Ready 1x2" "$(ever_ready nvbandwidth-test-compute-domain-1 2)"
check "nvbandwidth-2: Ready on 2 nodes of one clique" "Ready 1x2" "$(ever_ready nvbandwidth-test-compute-domain-2 2)"
check "nvbandwidth-1: indices 0 and 1" "0 1" \
  "$(cd_field nvbandwidth-test-compute-domain-1 '{.status.nodes[*].index}' | tr ' ' '\n' | sort | xargs)"
check "nvbandwidth-1: MPIJob succeeded" "True" "$(until_equal True mpijob_done nvbandwidth-test-1)"
check "nvbandwidth-2: MPIJob succeeded" "True" "$(until_equal True mpijob_done nvbandwidth-test-2)"
kubectl delete -f "$imex/nvbandwidth-test-job-1.yaml" -f "$imex/nvbandwidth-test-job-2.yaml" --wait=false >/dev/null
check "nvbandwidth 1+2: nothing left" "$clean" "$(until_equal "$clean" leftovers)"
kubectl apply -f "$imex/nvbandwidth-test-job.yaml" >/dev/null
check "nvbandwidth: Ready on 4 nodes of one clique" "Ready 1x4" "$(ever_ready nvbandwidth-test-compute-domain 4)"
check "nvbandwidth: indices 0-3" "0 1 2 3" \
  "$(cd_field nvbandwidth-test-compute-domain '{.status.nodes[*].index}' | tr ' ' '\n' | sort | xargs)"
check "nvbandwidth: MPIJob succeeded" "True" "$(until_equal True mpijob_done nvbandwidth-test)"
kubectl delete -f "$imex/nvbandwidth-test-job.yaml" --wait=false >/dev/null
check "nvbandwidth: nothing left" "$clean" "$(until_equal "$clean" leftovers)"


# --- imex-test1 asks for NVIDIA's retired imex.nvidia.com class: reported, not run ---
kubectl apply -f "$compat/quickstart/v1/imex-test1.yaml" >/dev/null
unschedulable() { kubectl get events -n imex-test1 --field-selector reason=FailedScheduling -o jsonpath='{.items[*].message}' | grep -o 'imex.nvidia.com' | head -1 || true; }
check "imex-test1: unknown class reported" "imex.nvidia.com" "$(until_equal imex.nvidia.com unschedulable)"
kubectl delete namespace imex-test1 --wait=true --wait=false >/dev/null

# --- bad input: a condition and an Event, no loop ---
cat >"$work/bad.yaml" <<'EOF'
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: too-big}
spec:
  numNodes: 9
  channel: {resourceClaimTemplate: {name: too-big-channel}}
  placement: {policy: SingleClique}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: taken}
spec:
  spec:
    devices:
      requests:
      - {name: gpu, exactly: {deviceClassName: gpu.nvidia.com}}
---
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: conflict}
spec:
  numNodes: 1
  channel: {resourceClaimTemplate: {name: taken}}
EOF
kubectl apply -f "$work/bad.yaml" >/dev/null
placed() { cd_field too-big '{.status.conditions[?(@.type=="Placed")].reason}'; }
check "numNodes larger than any clique: CannotFit" "CannotFit" "$(until_equal CannotFit placed)"
contains "CannotFit says why" "larger than any NVLink clique" "$(cd_field too-big '{.status.conditions[?(@.type=="Placed")].message}')"
check "CannotFit: no workload template" "" "$(kubectl get resourceclaimtemplate too-big-channel -o name 2>/dev/null || true)"
provisioned() { cd_field conflict '{.status.conditions[?(@.type=="Provisioned")].reason}'; }
check "template owned by someone else: TemplateConflict" "TemplateConflict" "$(until_equal TemplateConflict provisioned)"
check "someone else's template untouched" "" "$(kubectl get resourceclaimtemplate taken -o jsonpath='{.metadata.labels}')"
warning() { kubectl get events.v1.events.k8s.io -o jsonpath="{.items[?(@.regarding.name==\"$1\")].reason}"; }
check "Warning Event for conflict" "TemplateConflict" "$(until_equal TemplateConflict warning conflict)"
check "Warning Event for too-big" "CannotFit" "$(until_equal CannotFit warning too-big)"
leader_n=$(grep -l 'became the leader' "$work/ctl-1.log" "$work/ctl-2.log" | head -1 | sed 's/.*ctl-\([0-9]\).log/\1/')
reconciles() { curl -s "http://$(cat "$work/ctl-metrics-$leader_n")/metrics" | grep '^nvdra_controller_reconciles_total' | awk '{s += $2} END {print s}'; }
before=$(reconciles)
sleep 3
check "no reconcile loop on bad input" "$before" "$(reconciles)"
kubectl delete -f "$work/bad.yaml" --wait=false >/dev/null
check "bad input: nothing left" "$clean" "$(until_equal "$clean" leftovers)"

# --- metrics of the leader ---
metrics=$(curl -s "http://$(cat "$work/ctl-metrics-$leader_n")/metrics")
contains "time-to-Ready histogram" "nvdra_compute_domain_time_to_ready_seconds_count 5" "$metrics"
contains "NVIDIA's domain gauge" 'nvidia_dra_compute_domain_info{status="Ready"} 0' "$metrics"
contains "placement decisions" 'nvdra_placement_decisions_total{result="placed"} 5' "$metrics"
contains "reconciles" 'nvdra_controller_reconciles_total{result="success"}' "$metrics"

# --- failover: SIGKILL the leader, the standby takes over within 20 s ---
leader=$(holder)
victim=$leader_n; survivor=$((3 - leader_n))
crash "${ctl_pid[$victim]}"
start=$(date +%s)
for _ in $(seq 250); do h=$(holder); [ -n "$h" ] && [ "$h" != "$leader" ] && break; sleep 0.1; done
took=$(($(date +%s) - start))
check "standby took the lease" "yes" "$([ "$(holder)" != "$leader" ] && echo yes || echo no)"
check "within 20 s (took ${took} s)" "yes" "$([ "$took" -le 20 ] && echo yes || echo no)"
kubectl apply -f "$imex/channel-injection.yaml" >/dev/null
check "new leader reconciles" "Ready" "$(until_equal Ready cd_field imex-channel-injection '{.status.status}')"

# --- crash with orphans: both controllers down, the domain force-deleted, then a restart ---
crash "${ctl_pid[$survivor]}"
kubectl patch computedomain imex-channel-injection --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null
kubectl delete -f "$imex/channel-injection.yaml" --wait=false >/dev/null
check "orphans exist while no controller runs" "1" "$(kubectl get daemonsets -n nvdra-system -o name | wc -l)"
start_controller 3
check "restarted controller sweeps the orphans" "$clean" "$(until_equal "$clean" leftovers)"

# --- a domain is not lost over a controller crash mid-creation ---
crash "${ctl_pid[3]}"
kubectl apply -f "$imex/channel-injection.yaml" >/dev/null
start_controller 4
check "created while down: Ready after restart" "Ready" "$(until_equal Ready cd_field imex-channel-injection '{.status.status}')"
check "exactly one DaemonSet" "1" "$(kubectl get daemonsets -n nvdra-system -o name | wc -l)"
kubectl delete -f "$imex/channel-injection.yaml" --wait=false >/dev/null
check "after restart: nothing left" "$clean" "$(until_equal "$clean" leftovers)"

check "every component had the permissions it needed (manifests/base RBAC)" "0" "$(rbac_denials)"

# The simulator stops: every agent ends on SIGTERM, none is killed after 5 s.
kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=""
check "every agent stopped on SIGTERM" "0" "$(grep -c 'ignored SIGTERM' "$work/err" || true)"

summary
