#!/usr/bin/env bash
# `nvdra-sim up` runs one node agent per simulated node (here a stand-in that records its
# arguments), restarts an agent that dies, and stops them all when it stops.
# Usage: agents_sim_test.sh BIN_DIR
set -euo pipefail
BIN=${1:?usage: $0 BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

run_sim up --topology "$root/examples/topologies/demo.yaml" --agent-binary "$here/fake_agent.sh" --root "$work/nodes"
for _ in $(seq 100); do [ "$(ls "$work"/nodes/*/fake-agent.args 2>/dev/null | wc -l)" -eq 12 ] && break; sleep 0.05; done

check "one agent per node" "12" "$(ls "$work"/nodes/*/fake-agent.args | wc -l)"
n="$work/nodes/dgx-h100-0"
check "agent arguments" \
  "start kubelet-plugin --kubeconfig $work/kubeconfig --node-name dgx-h100-0 --device-backend sim --root $n --sim-node-config $n/node.yaml --metrics-bind-address 127.0.0.1:0 --feature-gates PassthroughSupport=true" \
  "$(head -1 "$n/fake-agent.args")"
a="$work/nodes/a100-mig-0"
check "no --feature-gates where the topology names none" \
  "start kubelet-plugin --kubeconfig $work/kubeconfig --node-name a100-mig-0 --device-backend sim --root $a --sim-node-config $a/node.yaml --metrics-bind-address 127.0.0.1:0" \
  "$(head -1 "$a/fake-agent.args")"
check "node description" "gpu: H100-80GB gpus: 8 mig: none" "$(grep -E '^(gpu|gpus|mig):' "$n/node.yaml" | tr '\n' ' ' | sed 's/ $//')"
check "clique in description" 'cliqueID: "5c3a1d2e-8f4b-4e6a-9b7c-0d1e2f3a4b5c.1"' "$(grep cliqueID "$work/nodes/nvl72-a-node-0/node.yaml")"
check "kubelet plugin folders" "yes" "$([ -d "$n/var/lib/kubelet/plugins_registry" ] && echo yes)"
for _ in $(seq 50); do [ "$(kubectl get nodes -o name 2>/dev/null | wc -l)" -eq 12 ] && break; sleep 0.1; done
check "nodes" "12" "$(kubectl get nodes -o name | wc -l)"
check "no slices from the simulator" "0" "$(kubectl get resourceslices -o name | wc -l)"

# An agent that dies is started again.
pkill -f "fake_agent.sh kubelet-plugin .* --node-name dgx-h100-0 " || true
for _ in $(seq 100); do [ "$(grep -c '^start' "$n/fake-agent.args")" -ge 2 ] && break; sleep 0.05; done
check "restarted" "2" "$(grep -c '^start' "$n/fake-agent.args")"

# Stopping the simulator stops every agent.
kill "$sim_pid"
wait "$sim_pid" || true
sim_pid=""
check "all stopped" "12" "$(for f in "$work"/nodes/*/fake-agent.args; do tail -1 "$f"; done | grep -c '^stopped$')"

summary
