#!/usr/bin/env bash
# kube-scheduler, not nvdra, places the pods of a ComputeDomain: nvdra narrows the workload
# claim template to the cliques it chose (a CEL selector on the channel's cliqueID), and the
# real scheduler's DRA allocator must honour it. The fixture's nodes: node-1 and node-2 in one
# NVLink clique, node-3 alone in another, node-4 without one (tests/k8s/nvdra/nodes.yaml).
#   - a 2-node domain lands in the clique that has room for both; a third worker of the same
#     domain stays Pending although node-3 has a free channel (without the selector it would run
#     there): the CEL changed the outcome;
#   - SingleClique waits (its Placed condition says why, its pods stay Pending) while the only
#     clique of two is taken, and is placed and runs there once it is free;
#   - SingleClique larger than any clique: nvdra says it cannot fit, with one Warning Event.
# Usage: k8s_placement_test.sh BUILD_BIN K8S_BIN
set -uo pipefail
BIN=$1
K8S_BIN=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
source "$here/k8s_lib.sh"
ns=k8s-placement
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1
kubectl create namespace "$ns" >/dev/null

# domain NAME NODES POLICY WORKERS: a ComputeDomain and a Job of WORKERS pods claiming its channel.
domain() {
  kubectl apply -n "$ns" -f - >/dev/null <<YAML
apiVersion: resource.nvidia.com/v1beta1
kind: ComputeDomain
metadata: {name: $1}
spec:
  numNodes: $2
  channel: {resourceClaimTemplate: {name: $1-channel}}
  placement: {policy: $3}
---
apiVersion: batch/v1
kind: Job
metadata: {name: $1}
spec:
  parallelism: $4
  completions: $4
  template:
    metadata: {labels: {domain: $1}}
    spec:
      restartPolicy: Never
      containers:
      - {name: worker, image: ubuntu:22.04, command: [bash, -c, 'ls /dev/nvidia-caps-imex-channels; trap "exit 0" TERM; sleep 9999 & wait'],
         resources: {claims: [{name: channel}]}}
      resourceClaims:
      - {name: channel, resourceClaimTemplateName: $1-channel}
YAML
}
phases() {  # DOMAIN: "node=phase" of its workers, sorted
  kubectl get pods -n "$ns" -l "domain=$1" -o jsonpath='{range .items[*]}{.spec.nodeName}={.status.phase}{"\n"}{end}' | sort | xargs
}

echo "== a 2-node domain, three workers"
domain pair 2 PreferSingleClique 3
running=""
for _ in $(seq 600); do
  running=$(kubectl get pods -n "$ns" -l domain=pair --field-selector=status.phase=Running -o name | wc -l)
  [ "$running" -ge 2 ] && break
  sleep 0.2
done
sleep 5  # the third worker had every chance to be scheduled
check "two workers run, in the clique with room" "=Pending node-1=Running node-2=Running" "$(phases pair)"
selector=$(kubectl get resourceclaimtemplate -n "$ns" pair-channel -o jsonpath='{.spec.spec.devices.requests[0].exactly.selectors[*].cel.expression}')
contains "the template names the clique" "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.1" "$selector"
pending=$(kubectl get pods -n "$ns" -l domain=pair --field-selector=status.phase=Pending -o name)
contains "the scheduler says why the third waits" "cannot allocate all claims" \
  "$(kubectl get events -n "$ns" --field-selector "involvedObject.name=${pending#pod/},reason=FailedScheduling" -o jsonpath='{.items[*].message}')"
check "node-3's channel is free" "" \
  "$(kubectl get resourceclaims -A -o jsonpath='{range .items[*]}{.status.allocation.devices.results[*].pool}{"\n"}{end}' | grep -x node-3 || true)"

echo "== SingleClique: waiting for room, then placed"
domain second 2 SingleClique 2
placed() { kubectl get computedomain -n "$ns" "$1" -o jsonpath='{.status.conditions[?(@.type=="Placed")].reason}' 2>/dev/null; }
check "nvdra waits for room (the clique of two is taken)" WaitingForRoom "$(WAIT_S=60 until_equal WaitingForRoom placed second)"
contains "and says why" "clique" \
  "$(kubectl get computedomain -n "$ns" second -o jsonpath='{.status.conditions[?(@.type=="Placed")].message}')"
sleep 3
check "its workers wait" "=Pending =Pending" "$(phases second)"
kubectl delete job -n "$ns" pair --wait=true >/dev/null
kubectl delete computedomain -n "$ns" pair --wait=true --timeout=60s >/dev/null
check "room again: placed" Placed "$(WAIT_S=60 until_equal Placed placed second)"
for _ in $(seq 600); do [ "$(phases second)" = "node-1=Running node-2=Running" ] && break; sleep 0.2; done
check "its workers run in that clique" "node-1=Running node-2=Running" "$(phases second)"

echo "== SingleClique larger than any clique"
domain trio 3 SingleClique 3
check "nvdra says it cannot fit" CannotFit "$(WAIT_S=60 until_equal CannotFit placed trio)"
contains "and why" "larger than any NVLink clique" \
  "$(kubectl get computedomain -n "$ns" trio -o jsonpath='{.status.conditions[?(@.type=="Placed")].message}')"
contains "one Warning Event" "larger than any NVLink clique" \
  "$(kubectl get events -n "$ns" --field-selector involvedObject.name=trio,type=Warning -o jsonpath='{.items[*].message}')"
check "its workers wait" "=Pending =Pending =Pending" "$(phases trio)"

kubectl delete namespace "$ns" --wait=true --timeout=120s >/dev/null
check "nothing left: domain labels" 0 "$(kubectl get nodes -l resource.nvidia.com/computeDomain -o name | wc -l)"
check "nothing left: IMEX DaemonSets" 0 "$(kubectl get daemonsets -n nvdra-system -o name | grep -c computedomain-daemon || true)"
summary
